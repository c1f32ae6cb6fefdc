# Shared by every rule: the validated config, the grid, and the settings slice of each job.
import json
import os
from pathlib import Path
import re
import sys
import time
from types import SimpleNamespace

from vqrepro import config as vqconfig
from vqrepro import places, runs, sharing
from vqrepro.io import write_text
from vqrepro.summary import claim_counts_text, failed_points, run_summary

CONFIG_SOURCE = "params.yaml (with any --configfile overrides)"
RUN_STARTED = time.time()  # the end-of-run summary counts only files written after this


def is_dry_run():
    """True under -n/--dry-run. workflow.dryrun is only set once execution starts (it is always
    False while the Snakefile is parsed); the output settings carry --dry-run from the start."""
    return bool(getattr(workflow.output_settings, "dryrun", False))


config.setdefault("scale", "mini")
try:
    # The papers' catalogues (params.yaml: papers) join the config here: every rule sees one merged config.
    merged = vqconfig.with_papers_checked(dict(config), CONFIG_SOURCE, root=workflow.basedir)
except vqconfig.ConfigError as err:
    sys.exit(f"vqrepro: invalid configuration: {err}")
config.clear()
config.update(merged)
# Each scale writes apart (vqrepro.places): mini at the repository's root, any other config in its workdir.
PLACE = places.workdir(config)
# A dry run shows the plan of a paper config on a machine without its data; a real run stops here.
missing_data = vqconfig.missing_data(config, config["run_studies"], CONFIG_SOURCE, data_dir=Path(PLACE) / "data")
if missing_data and is_dry_run():
    for message in missing_data:
        print(f"vqrepro: warning: {message} (dry run: planned anyway; a real run stops here)", file=sys.stderr)
elif missing_data:
    sys.exit(f"vqrepro: invalid configuration: {missing_data[0]}")
places.relocated(config, Path.cwd())
if PLACE != ".":
    # Not Snakemake's `workdir:` directive: --directory silently overrides it, and a smoke or paper run
    # started with --directory must still write apart from that folder's mini results. Jobs spawned on a
    # cluster parse this file again from the launch folder (or the same --directory) and land here too.
    Path(PLACE).mkdir(parents=True, exist_ok=True)
    os.chdir(PLACE)


def one_of(names):
    """A wildcard pattern matching exactly these names (keeps study and generation-study outputs apart)."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!)"


wildcard_constraints:
    study=one_of(config["studies"]),
    generation_study=one_of(config["generation_studies"]),
    reproduction=one_of(config.get("reproductions", {})),
    toy=one_of(config.get("toys", {})),
    prior=r"[A-Za-z0-9_]+",
    prior_seed=r"\d+",
    classifier=r"[A-Za-z0-9_]+",
    split="train|test",
    dataset=r"[A-Za-z0-9_]+",
    quantizer=r"[A-Za-z0-9_]+",
    point=runs.POINT_PATTERN,
    seed=r"\d+",
    trained=r"[A-Za-z0-9_]+",


def run_key(wildcards):
    return runs.RunKey.from_wildcards(wildcards)


def settings_file(settings, sort_keys=True):
    """A job's settings slice, as a file named by its content; the job's params hold that path.

    Snakemake prints a changed param in the job's reason line, so passing the JSON itself put
    slices of up to ~20,000 characters there. A changed slice still re-runs the job: its file
    name changes. Written at planning time, so every executor (local, SLURM) finds it.
    ``sort_keys=False`` keeps the order of params.yaml where it means something (a paper's rows).
    """
    text = json.dumps(settings, sort_keys=sort_keys, separators=(",", ":"))
    path = runs.settings_path(text)
    if not Path(path).exists():
        write_text(path, f"{text}\n")
    return path


# Which trained run each grid point reads (vqrepro/sharing.py), planned once from the run's studies.
READINGS = sharing.plan(config)
TRAINED = sharing.trained_runs(READINGS)


def reading_of(key):
    """A grid point's reading; one outside the run's studies (a target named by hand) trains on its own."""
    if key not in READINGS:
        READINGS[key] = sharing.plan_keys(config, [key])[key]
        TRAINED[READINGS[key].run.path] = READINGS[key].run
    return READINGS[key]


def trained_run(wildcards):
    path = runs.TRAINED_RUN.format(dataset=wildcards.dataset, trained=wildcards.trained)
    if path not in TRAINED:
        raise ValueError(f"{runs.run_file(path, '')} is no trained run of this configuration's studies "
                         "(run_studies); ask for a study's grid point files or its table instead")
    return TRAINED[path]


def trained_settings_file(wildcards):
    return settings_file(trained_run(wildcards).settings)


def trained_readings_file(wildcards):
    return settings_file(trained_run(wildcards).readings_settings())


def trained_run_outputs(wildcards):
    run = reading_of(run_key(wildcards)).run
    return [runs.run_file(run.path, name) for name in (runs.CHECKPOINT, runs.METRICS, runs.TRAIN_LOG, runs.CONVERGENCE)]


def reading_settings_file(wildcards):
    return settings_file(reading_of(run_key(wildcards)).settings())


def failures_to_readings():
    """Put a failed trained run's failure record into each of its readings, where reports look for it,
    with the trained run and the log that says more."""
    for key, reading in READINGS.items():
        record = Path(runs.RUNS_DIR) / reading.run.path / runs.FAILURE_RECORD
        folder = Path(runs.RUNS_DIR) / key.path
        if record.exists() and not (folder / runs.METRICS).exists():
            failure = {**json.loads(record.read_text()), "trained_run": str(record.parent),
                       "log": runs.log_file(reading.run.path, "train.log")}
            write_text(folder / runs.FAILURE_RECORD, json.dumps(failure, indent=1))


def eval_settings_file(wildcards):
    return settings_file(vqconfig.eval_settings(config))


def study_settings_file(wildcards):
    return settings_file(config["studies"][wildcards.study])


def study_metrics(wildcards):
    return study_metrics_all([wildcards.study])


def study_metrics_all(studies):
    return [key.file(runs.METRICS) for study in studies for key in vqconfig.grid(config, study)]


def studies_with_recorded_failures(studies):
    """(complete, incomplete): studies in which some grid point failed (failure.json), split by
    whether every other grid point finished (as after --keep-going)."""
    complete, incomplete = [], []
    for study in studies:
        folders = [Path(runs.RUNS_DIR) / key.path for key in vqconfig.grid(config, study)]
        failed = [run for run, _ in failed_points(folders)]
        if failed:
            finished = all((run / runs.METRICS).exists() or run in failed for run in folders)
            (complete if finished else incomplete).append(study)
    return complete, incomplete


def tables_of(names):
    """The Markdown table of each study, generation study or reproduction: results/tables/<name>.md."""
    return [f"results/tables/{name}.md" for name in names]


# The report commands, shared by their rules and by onerror's partial reports (after --keep-going).
def study_report_command(study, settings):
    return f"python -m vqrepro report --study {study} --settings {settings} --runs runs --results results"


def reproduction_command(name, settings):
    return f"python -m vqrepro reproduce --name {name} --settings {settings} --runs runs --results results"


def convergence_reports(studies):
    """Studies whose schedule measures whole splits along the way (training.eval_every) get a convergence report."""
    return [f"results/tables/{study}_over_steps.md" for study in vqconfig.convergence_studies(config, studies)]


def convergence_curves(wildcards):
    return [key.file(runs.CONVERGENCE) for key in vqconfig.grid(config, wildcards.study)]


def convergence_settings_file(wildcards):
    return settings_file({"study": config["studies"][wildcards.study], "scale": config["scale"],
                    "followers": vqconfig.schedule_followers(config, wildcards.study)})


# --------------------------------------------------------------------------- stage 2


def classifier_settings_file(wildcards):
    return settings_file(config["classifiers"][wildcards.classifier])


def prior_settings_file(wildcards):
    return settings_file(vqconfig.prior_settings(config, wildcards.prior))


def sampling_settings_file(wildcards):
    return settings_file(vqconfig.sampling_settings(config, wildcards.prior, int(wildcards.prior_seed)))


def generation_study_settings_file(wildcards):
    return settings_file(config["generation_studies"][wildcards.generation_study])


def generation_dataset(wildcards):
    study = config["generation_studies"][wildcards.generation_study]
    return config["studies"][study["tokenizer_study"]]["dataset"]


def generation_outputs(studies):
    files = []
    for study in studies:
        classifier = config["generation_studies"][study]["classifier"]
        for key in vqconfig.generation_grid(config, study):
            files += [key.file(runs.GENERATION.format(classifier=classifier)), key.file(runs.SAMPLES)]
    return files


def generation_report_inputs(wildcards):
    study = wildcards.generation_study
    classifier = config["generation_studies"][study]["classifier"]
    dataset = config["classifiers"][classifier]["dataset"]
    return {
        "runs": generation_outputs([study]),
        "classifier_metrics": runs.classifier_file(dataset, classifier, runs.CLASSIFIER_METRICS),
    }


# --------------------------------------------------------------------------- the papers' tables and claims

reproductions_to_run = vqconfig.reproductions_to_run(config)


def reproduction_inputs(wildcards):
    return [key.file(runs.METRICS) for key in vqconfig.reproduction_grid(config, wildcards.reproduction)]


def reproduction_paper_numbers(wildcards):
    """The published table a reproduction compares against: editing it re-builds the comparison."""
    spec = config["reproductions"][wildcards.reproduction].get("paper_numbers")
    return [str(vqconfig.paper_numbers_dir() / spec["file"])] if spec else []


def reproduction_paper(wildcards):
    return config["reproductions"][wildcards.reproduction]["paper"]


def describe_setting(study: dict) -> str:
    """One line saying what a study's numbers were measured on."""
    training = config["training"][study["training"]]
    batch = f"batch sizes {study['batch_sizes']}" if "batch_sizes" in study else f"batch {training['batch_size']}"
    return (f"data set {study['dataset']}, model {study['model']}, {training['steps']} Adam steps at {batch}, "
            f"lr {training['lr']}, codebook sizes {study['codebook_sizes']}, code dimensions {study['code_dims']}")


def reproduction_settings_file(wildcards):
    spec = config["reproductions"][wildcards.reproduction]
    study = config["studies"][spec["study"]]
    return settings_file({"reproduction": spec, "study": study, "scale": config["scale"],
                          "setting": describe_setting(study)}, sort_keys=False)  # rows: the paper's order


def claim_curves():
    """The convergence studies this run builds whose curves a claim's ``settled`` check reads."""
    named = {entry["settled"]["study"] for claim in config.get("claims", []) for entry in claim.get("evidence", [])
             if "settled" in entry}
    return [study for study in vqconfig.convergence_studies(config, config["run_studies"]) if study in named]


def claims_inputs(wildcards):
    tables = [f"results/{kind}/{name}.{ext}" for name in reproductions_to_run
              for kind, ext in (("tables", "csv"), ("metrics", "json"))]
    return tables + [f"results/tables/{study}_over_steps.csv" for study in claim_curves()]


def claims_settings_file(wildcards):
    reproductions = {name: {key: spec[key] for key in ("paper", "reproduces", "study")}
                     for name, spec in config.get("reproductions", {}).items()}
    return settings_file({"claims": config.get("claims", []), "reproductions": reproductions,
                          "built": reproductions_to_run, "curves": claim_curves(), "scale": config["scale"]},
                         sort_keys=False)


def toy_settings_file(wildcards):
    return settings_file(config["toys"][wildcards.toy])


def paper_outputs():
    files = tables_of(reproductions_to_run)
    files += [f"results/metrics/toy_{toy}.json" for toy in config.get("toys", {})]
    return files + ["results/claims.md", "results/paper_vs_repro/index.md"]


# --------------------------------------------------------------------------- the end of a run


def report_front_page_facts():
    """What the report's front page (workflow/report/workflow.rst) states about this run. Snakemake hands
    that page only the config, so the facts travel there; no job's settings slice includes them."""
    points = sum(len(vqconfig.grid(config, study)) for study in config["run_studies"])
    return {"claims": claim_counts_text("results"), "studies": len(config["run_studies"]), "grid_points": points,
            "reproductions": len(reproductions_to_run)}


config["report_front_page"] = report_front_page_facts()


def end_of_run_summary(succeeded):
    tables = (tables_of(config["run_studies"]) + convergence_reports(config["run_studies"])
              + tables_of(config["run_generation_studies"]) + tables_of(reproductions_to_run))
    folders = [f"{runs.RUNS_DIR}/{key.path}" for study in config["run_studies"] for key in vqconfig.grid(config, study)]
    print(run_summary(tables, folders, config["scale"], succeeded=succeeded, since=RUN_STARTED, place=PLACE),
          file=sys.stderr)
