"""A rehearsal of a paper config: its whole DAG, at its architecture and image size, on stand-in data.

A paper config (configs/paper/*.yaml) needs the papers' data sets and GPUs, so on a laptop or in CI
nothing of it would ever run. The rehearsal keeps everything that makes it that config (the
studies it runs, their models and image sizes, quantizers, reproductions, claims, stage 2) and
shrinks only what costs time without exercising anything new:

- data: stand-in files in each data set's published layout (vqrepro.layouts), a few images each,
  read with ``verify_release: false``;
- schedules: a few steps at a small batch; every measurement interval 1 step;
- grids: one seed, and per axis the values the config's reproductions select (else the first);
  every quantizer stays, so every rule and every method runs;
- stage 2: a few prior and classifier steps, two samples at one snapshot;
- the 2-D demonstrations: only those of the papers the config runs.

``rehearsal_config`` returns the complete config (papers merged in, ``papers: []``) that
``python -m vqrepro rehearse`` writes next to the stand-in data; Snakemake runs it with
``--configfile``. It writes to scales/rehearsal/<config>/, never to a real run's folder.
"""
from __future__ import annotations

import copy
from pathlib import Path

from . import config as vqconfig

STEPS, BATCH, IMAGES = 2, 4, {"train": 8, "test": 4}


def _layout(dataset: dict) -> str | None:
    if dataset["source"] in ("mnist", "fashion_mnist", "cifar10"):
        return dataset["source"]
    if dataset["source"] == "image_folder":
        return "imagenet" if dataset.get("train_dir") else "image_folder"
    return None  # bundled with a package: nothing to stand in for


def _kept_values(cfg: dict, study_name: str, axis: str) -> list:
    """The values of one grid axis the config's reproductions of this study select, else the first."""
    values = cfg["studies"][study_name].get(vqconfig.AXIS_LISTS[axis])
    if not values:
        return values
    selected = {v for spec in cfg.get("reproductions", {}).values() if spec["study"] == study_name
                for v in spec.get("select", {}).get(axis, [])}
    return [v for v in values if v in selected] or values[:1]


def _toy_papers(paper_config: str | Path) -> dict[str, str]:
    """{toy: the paper whose catalogue defines it} for the catalogues the config loads."""
    from .layering import layered
    from .papers import REPOSITORY, read_catalogue

    raw, _ = layered([paper_config])
    return {toy: catalogue["paper"] for name in raw.get("papers") or []
            for catalogue in [read_catalogue(Path(name) if Path(name).is_absolute() else REPOSITORY / name)]
            for toy in catalogue.get("toys", {})}


def rehearsal_config(paper_config: str | Path, standin_root: str | Path, steps: int = STEPS,
                     batch: int | None = BATCH) -> dict:
    """The complete config of the rehearsal of ``paper_config`` (layered on params.yaml, papers merged):
    ``steps`` per schedule at a batch of at most ``batch`` (None: the paper's batch size)."""
    cfg, _ = vqconfig.load_layered([paper_config])
    cfg = copy.deepcopy(cfg)
    name = Path(paper_config).stem
    cfg["workdir"] = f"scales/rehearsal/{name}"
    cfg["compute"] = dict(cfg["compute"], gpus_per_job=0, threads_per_job=1)
    studies = list(cfg["run_studies"])
    generation = [cfg["generation_studies"][g] for g in cfg["run_generation_studies"]]
    studies += [g["tokenizer_study"] for g in generation if g["tokenizer_study"] not in studies]
    for study_name in studies:
        study = cfg["studies"][study_name]
        study["seeds"] = study["seeds"][:1]
        study.pop("more_seeds", None)
        for axis in vqconfig.AXIS_LISTS:
            if study.get(vqconfig.AXIS_LISTS[axis]):
                study[vqconfig.AXIS_LISTS[axis]] = _kept_values(cfg, study_name, axis)
        training = cfg["training"][study["training"]]
        training.update(steps=steps, batch_size=min(training["batch_size"], batch or training["batch_size"]),
                        log_every=1, checkpoint_every=max(1, steps // 2), workers=0)
        if training.get("eval_every"):
            training["eval_every"] = 1
        dataset = cfg["datasets"][study["dataset"]]
        layout = _layout(dataset)
        if layout:
            dataset["root"] = str(Path(standin_root) / study["dataset"])
            if layout in ("mnist", "fashion_mnist", "cifar10"):
                dataset["verify_release"] = False
    for gen in generation:
        tokenizers = cfg["studies"][gen["tokenizer_study"]]
        gen.update(codebook_sizes=[k for k in gen["codebook_sizes"] if k in tokenizers["codebook_sizes"]][:1]
                   or tokenizers["codebook_sizes"][:1],
                   code_dims=[d for d in gen["code_dims"] if d in tokenizers["code_dims"]][:1]
                   or tokenizers["code_dims"][:1], tokenizer_seeds=tokenizers["seeds"][:1], seeds=gen["seeds"][:1])
        for prior in gen["priors"]:  # one snapshot of two samples: sampling a paper-size prior is the costly part
            cfg["priors"][prior].update(steps=STEPS, batch_size=min(cfg["priors"][prior]["batch_size"], BATCH),
                                        log_every=1, checkpoint_every=1, snapshot_every=STEPS, num_samples=2)
        cfg["classifiers"][gen["classifier"]].update(steps=STEPS, batch_size=BATCH)
    # A paper's 2-D demonstrations go with the configs that run that paper, as short as the smoke scale's.
    papers_run = {spec["paper"] for spec in cfg["reproductions"].values() if spec["study"] in cfg["run_studies"]}
    cfg["toys"] = {toy: settings for toy, settings in cfg.get("toys", {}).items()
                   if _toy_papers(paper_config).get(toy) in papers_run}
    for toy, settings in cfg["toys"].items():
        if toy.startswith("nsvq_"):
            settings.update(steps=10, num_points=128, points_per_step=32, epoch_steps=5)
    vqconfig.check(cfg, f"rehearsal of {paper_config}")
    return cfg


def standins_needed(cfg: dict) -> dict[str, dict]:
    """{data set name: its settings} of every data set the rehearsal reads from stand-in files."""
    names = {cfg["studies"][s]["dataset"] for s in cfg["run_studies"]}
    names |= {cfg["studies"][cfg["generation_studies"][g]["tokenizer_study"]]["dataset"]
              for g in cfg["run_generation_studies"]}
    names |= {cfg["classifiers"][cfg["generation_studies"][g]["classifier"]]["dataset"]
              for g in cfg["run_generation_studies"]}
    return {n: cfg["datasets"][n] for n in sorted(names) if _layout(cfg["datasets"][n])}


def write_standins(cfg: dict, standin_root: str | Path, images: dict[str, int] | None = None) -> list[Path]:
    """Stand-in files for every data set the rehearsal reads, in its layout (kept if already there);
    ``images``: per split (default: a few)."""
    from .layouts import write_standin

    images, written = images or IMAGES, []
    for name, dataset in standins_needed(cfg).items():
        root = Path(standin_root) / name
        if not root.exists():
            split_dirs = {"train": dataset.get("train_dir", "train"), "test": dataset.get("test_dir", "val")}
            counts = images if _layout(dataset) != "image_folder" else {"train": images["train"] + images["test"]}
            write_standin(_layout(dataset), root, counts, size=dataset.get("size", 32), split_dirs=split_dirs)
            written.append(root)
    return written
