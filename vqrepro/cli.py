"""The verbs that the Snakemake rules (and users) call: ``python -m vqrepro <verb>``.

Rules hand each job the slice of params.yaml it depends on (``--settings``, a JSON file the
rule writes; JSON text works too by hand), so a job never reads settings it does not declare.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# CPU kernels pinned to one instruction set: torch's own kernels, oneDNN's convolutions and
# MKL's BLAS otherwise pick AVX-512 or vendor-specific paths by machine, which round
# differently, and a configuration near a collapse turns the last bit into a different
# table. AVX2 runs on every x86-64 machine of the last decade. Read when torch loads, so set
# before any verb imports it; a variable already in the environment wins (docs/reliability.md).
PINNED_CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2,STRICT"}


def pin_cpu_kernels() -> None:
    for name, value in PINNED_CPU_KERNELS.items():
        os.environ.setdefault(name, value)


def _json(text: str) -> dict:
    """--settings: JSON text, or the path of a JSON file (the rules pass files: see common.smk)."""
    if not text.lstrip().startswith(("{", "[")):
        try:
            text = Path(text).read_text()
        except OSError as err:
            raise argparse.ArgumentTypeError(
                f"--settings must be JSON text or the path of a JSON file; cannot read {text!r}: {err.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--settings must be JSON: {err}") from None


def cmd_validate(args) -> None:
    from . import config

    files = ([args.params] if args.params else []) + args.configfiles
    cfg, source = config.load_layered(files)
    jobs = sum(len(config.grid(cfg, s)) for s in cfg["run_studies"])
    priors = sum(len(config.generation_grid(cfg, s)) for s in cfg["run_generation_studies"])
    print(f"{source}: valid; run_studies {cfg['run_studies']} have {jobs} tokenizer training jobs; "
          f"run_generation_studies {cfg['run_generation_studies']} have {priors} prior training jobs")
    for message in config.missing_data(cfg, cfg["run_studies"], source):  # as a dry run warns: a real run stops
        print(f"vqrepro validate: warning: {message}", file=sys.stderr)


def cmd_rehearse(args) -> None:
    import yaml

    from . import rehearsal

    for paper_config in args.configs or sorted(Path("configs/paper").glob("*.yaml")):
        cfg = rehearsal.rehearsal_config(paper_config, args.standins)
        rehearsal.write_standins(cfg, args.standins)
        out = Path(args.out) / f"{Path(paper_config).stem}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# The rehearsal of {paper_config} (python -m vqrepro rehearse; vqrepro/rehearsal.py).\n"
                       + yaml.safe_dump(cfg, sort_keys=False))
        print(f"snakemake --cores all --configfile {out}    # writes {cfg['workdir']}/")


def cmd_prepare_data(args) -> None:
    from . import data

    info = data.prepare(args.name, args.settings, args.out)
    print(json.dumps({split: entry["count"] for split, entry in info["splits"].items()}))


def cmd_train(args) -> None:
    from .train import train_tokenizer

    if (args.evaluate is None) != (args.metrics is None):
        raise SystemExit("vqrepro train: error: --evaluate and --metrics go together (evaluation settings, metrics.json path)")
    ckpt = train_tokenizer(args.settings, args.data, args.out, threads=args.threads, device=args.device,
                           readings=args.readings, evaluation=args.evaluate)
    if args.evaluate is not None:  # in the same process: a second job would pay the torch import again
        from .evaluate import evaluate_tokenizer

        evaluate_tokenizer(ckpt, args.data, args.metrics, args.evaluate, threads=args.threads, device=args.device)


def cmd_read_run(args) -> None:
    from .readings import read_run

    read_run(args.reading, args.out, runs_dir=args.runs)
    print(f"{args.out}: read from {args.runs}/{args.reading['trained_run']} at step {args.reading['step']}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_tokenizer

    result = evaluate_tokenizer(args.ckpt, args.data, args.out, args.settings, threads=args.threads, device=args.device)
    print(json.dumps(result["metrics"]))


def _study_runs(name: str, study: dict, runs_dir: str, filename: str) -> tuple[list[str], list[dict]]:
    """The ``filename`` of every grid point of one study, and each point's identity as a table row."""
    from . import config

    keys = config.study_grid(name, study)
    files = [str(Path(runs_dir) / k.path / filename) for k in keys]
    rows = [{"quantizer": k.quantizer, "codebook_size": k.codebook_size, "code_dim": k.code_dim, "seed": k.seed}
            | ({"batch_size": k.batch_size} if k.batch_size is not None else {}) for k in keys]
    return files, rows


def cmd_report(args) -> None:
    from . import report, runs

    study = args.settings
    files, rows = _study_runs(args.study, study, args.runs, runs.METRICS)
    report.build_study_report(args.study, study["title"], files, rows, args.results, allow_missing=args.allow_missing)


def cmd_encode_tokens(args) -> None:
    from .prior import encode_tokens

    encode_tokens(args.ckpt, args.data, args.split, args.out, threads=args.threads, device=args.device)


def cmd_train_classifier(args) -> None:
    from .classifier import train_classifier

    report = train_classifier(args.settings, args.data, args.out, threads=args.threads, device=args.device)
    print(f"test accuracy {report['test_accuracy']:.4f}")


def cmd_train_prior(args) -> None:
    from .prior import train_prior

    train_prior(args.settings, args.tokens, args.out, args.seed, threads=args.threads, device=args.device)


def cmd_sample_prior(args) -> None:
    from .generation import sample_prior

    sample_prior(args.prior, args.ckpt, args.settings, args.out, threads=args.threads, device=args.device)


def cmd_evaluate_generation(args) -> None:
    from .generation import evaluate_generation

    result = evaluate_generation(args.samples, args.prior, args.tokens, args.data, args.classifier, args.settings,
                                 args.out, threads=args.threads, device=args.device)
    print(json.dumps(result["metrics"]))


def cmd_generation_report(args) -> None:
    from . import config, report

    keys = config.generation_study_grid(args.settings, args.dataset)
    report.build_generation_report(args.study, args.settings["title"], keys, args.settings["classifier"], args.runs,
                                   args.classifier_metrics, args.results)


def cmd_weights(args) -> None:
    from . import config, weights

    configured = config.load(args.params)["weights"] if Path(args.params).exists() else {}
    for row in weights.report(configured):
        state = "present" if row["present"] else "MISSING"
        print(f"{row['name']:<11} {state:<8} {row['path']}\n            used for {row['used_for']}")
        if not row["present"]:
            print(f"            {row['reason']}; copy the file there or set weights.{row['name']} in params.yaml")


def cmd_quantizers(args) -> None:
    from .quantizers import describe

    for entry in describe():
        print(f"{entry['method']:<8} {entry['paper']}\n         defaults: {entry['defaults']}")


def cmd_convergence(args) -> None:
    from . import convergence, runs

    settings = args.settings
    study = settings["study"]
    files, rows = _study_runs(args.study, study, args.runs, runs.CONVERGENCE)
    convergence.build_convergence_report(args.study, study["title"], files, rows, args.results,
                                         settings["followers"], settings["scale"])


def cmd_reproduce(args) -> None:
    from . import config, report, runs

    settings = args.settings
    spec, study = settings["reproduction"], settings["study"]
    keys = config.reproduction_study_grid(spec, study)  # spec["rows"] in the paper's row order
    files = [str(Path(args.runs) / k.path / runs.METRICS) for k in keys]
    paper_dir = Path(args.paper_numbers) if args.paper_numbers else config.paper_numbers_dir()
    report.build_reproduction_report(args.name, spec, files, keys, args.results, settings["scale"],
                                     settings["setting"], paper_dir, dataset=study["dataset"])


def cmd_claims(args) -> None:
    from .claims import write_claims_pages

    write_claims_pages(args.settings, args.results, args.out, args.index, args.counts)


def cmd_toy(args) -> None:
    from .toys import run_toy

    run_toy(args.name, args.settings, Path(args.figure), Path(args.metrics))


def parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="vqrepro", description="Reproduction pipeline for codebook collapse in VQ.")
    p.add_argument("--version", action="version", version=f"vqrepro {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)

    def job(name: str, func, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        q.set_defaults(func=func)
        return q

    def report_job(name: str, func, help_: str, settings_help: str) -> argparse.ArgumentParser:
        """A verb that reads run folders and writes results/: --settings, --runs, --results."""
        q = job(name, func, help_)
        q.add_argument("--settings", type=_json, required=True, help=settings_help)
        q.add_argument("--runs", default="runs")
        q.add_argument("--results", default="results")
        return q

    def device_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads:)")
        q.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")

    q = job("validate", cmd_validate, "check params.yaml (with config files layered on it) and print the size of the grid")
    q.add_argument("configfiles", nargs="*", metavar="FILE",
                   help="config files layered in order on ./params.yaml, as snakemake --configfile FILE ... does; "
                        "a YAML syntax error is reported with its line and column")
    q.add_argument("--params", default=None, metavar="FILE",
                   help="one more config file, layered first (the older spelling of a FILE argument)")
    q = job("prepare-data", cmd_prepare_data, "write data/<name>/{train,test}.pt")
    q.add_argument("--name", required=True)
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--out", required=True)
    for name, func, help_ in (("train", cmd_train, "train one tokenizer"), ("evaluate", cmd_evaluate, "evaluate one tokenizer")):
        q = job(name, func, help_)
        q.add_argument("--settings", type=_json, required=True)
        q.add_argument("--data", required=True, help="prepared data folder")
        q.add_argument("--out", required=True)
        device_args(q)
        if name == "evaluate":
            q.add_argument("--ckpt", required=True)
        else:
            q.add_argument("--evaluate", type=_json, default=None, metavar="SETTINGS",
                           help="evaluation settings: evaluate the trained tokenizer in the same process")
            q.add_argument("--metrics", default=None, help="where the evaluation goes (with --evaluate)")
            q.add_argument("--readings", type=_json, default=None, metavar="READINGS",
                           help="snapshot, measurement and log steps of a run shared by several studies "
                                "(vqrepro/sharing.py; default: the run's own eval_every and log_every)")
    q = job("read-run", cmd_read_run, "copy one grid point's files out of its trained run (vqrepro/sharing.py)")
    q.add_argument("--reading", type=_json, required=True, metavar="SETTINGS",
                   help="the reading's settings slice: trained run, step, measurement and log steps")
    q.add_argument("--out", required=True, help="the grid point's run folder")
    q.add_argument("--runs", default="runs")
    q = job("encode-tokens", cmd_encode_tokens, "write the token grids of one split for one tokenizer")
    q.add_argument("--ckpt", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--split", choices=["train", "test"], required=True)
    q.add_argument("--out", required=True)
    device_args(q)
    q = job("train-classifier", cmd_train_classifier, "train the feature classifier of a labelled data set")
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--out", required=True)
    device_args(q)
    q = job("train-prior", cmd_train_prior, "train one token prior")
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--tokens", required=True, help="tokens_train.pt of the tokenizer")
    q.add_argument("--seed", type=int, required=True)
    q.add_argument("--out", required=True)
    device_args(q)
    q = job("sample-prior", cmd_sample_prior, "sample a prior at each snapshot and decode with the tokenizer")
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--prior", required=True)
    q.add_argument("--ckpt", required=True, help="the tokenizer's ckpt.pt")
    q.add_argument("--out", required=True)
    device_args(q)
    q = job("evaluate-generation", cmd_evaluate_generation, "score a prior's samples and likelihood")
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--samples", required=True)
    q.add_argument("--prior", required=True)
    q.add_argument("--tokens", required=True, help="tokens_test.pt of the tokenizer")
    q.add_argument("--data", required=True)
    q.add_argument("--classifier", required=True)
    q.add_argument("--out", required=True)
    device_args(q)
    q = job("generation-report", cmd_generation_report, "tables and figures of one generation study")
    q.add_argument("--study", required=True)
    q.add_argument("--settings", type=_json, required=True, help="the generation study's definition")
    q.add_argument("--dataset", required=True, help="the tokenizer study's data set")
    q.add_argument("--classifier-metrics", required=True)
    q.add_argument("--runs", default="runs")
    q.add_argument("--results", default="results")
    q = report_job("report", cmd_report, "tables and figures of one study", "the study's definition")
    q.add_argument("--study", required=True)
    q.add_argument("--allow-missing", action="store_true",
                   help="report a study whose grid is incomplete, marking missing grid points (after --keep-going)")
    q = report_job("convergence", cmd_convergence, "usage, perplexity and MSE against steps of one study (convergence.csv)",
                   "{study: definition, followers: {study: steps} trained with the same loop, scale: str}")
    q.add_argument("--study", required=True)
    q = report_job("reproduce", cmd_reproduce, "one paper table/figure from its study's runs, with the paper comparison",
                   "{reproduction: spec, study: definition, scale: str, setting: one-line description}")
    q.add_argument("--name", required=True)
    q.add_argument("--paper-numbers", default=None, help="folder of the published tables (default: the package's vqrepro/paper_numbers)")
    q = job("claims", cmd_claims, "check the papers' claims on the built reproductions; index the comparisons")
    q.add_argument("--settings", type=_json, required=True, help="{claims, reproductions, order, built, scale}")
    q.add_argument("--results", default="results")
    q.add_argument("--out", required=True, help="results/claims.md")
    q.add_argument("--index", required=True, help="results/paper_vs_repro/index.md: every paper table and its files")
    q.add_argument("--counts", default=None, help="results/metrics/claims.json: claims per status, overall and per paper")
    q = job("toy", cmd_toy, "run one 2-D toy demonstration")
    q.add_argument("--name", required=True)
    q.add_argument("--settings", type=_json, required=True)
    q.add_argument("--figure", required=True, help="figure path without suffix (.png and .pdf are written)")
    q.add_argument("--metrics", required=True)
    q = job("rehearse", cmd_rehearse, "stand-in data and a few-step config for each paper config, to run its "
            "whole DAG on CPU (vqrepro/rehearsal.py)")
    q.add_argument("configs", nargs="*", help="paper configs (default: configs/paper/*.yaml)")
    q.add_argument("--standins", default="scales/rehearsal/data_local", help="where the stand-in data sets go")
    q.add_argument("--out", default="scales/rehearsal/configs", help="where the rehearsal configs go")
    q = job("weights", cmd_weights, "which pretrained weight files are present, and where missing ones go")
    q.add_argument("--params", default="params.yaml")
    job("quantizers", cmd_quantizers, "list every quantizer method with its source and defaults")
    return p


def main(argv: list[str] | None = None) -> int:
    pin_cpu_kernels()
    from .errors import USER_ERRORS

    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # no verb: show what there is rather than argparse's one-line complaint
        parser().print_help()
        return 2
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as err:
        print(f"vqrepro {args.verb}: error: {err}", file=sys.stderr)
        return 1
    return 0
