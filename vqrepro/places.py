"""Where each scale writes, so that no scale's run overwrites another's.

The mini scale is what the repository ships: its data/, runs/, results/ and logs/ sit at the
repository's root. Every other config writes the same four folders (and Snakemake's records)
under its own ``workdir``: by default ``scales/<scale>/``, and each configs/paper/*.yaml names
its own ``scales/paper/<config>/`` so that two paper configs never share results either.
workflow/rules/common.smk changes into that folder before any rule runs (``os.chdir``, not Snakemake's
``workdir:`` directive, which ``--directory`` would silently override).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import ConfigError

MINI = "mini"


def workdir(config: dict) -> str:
    """The folder, relative to the launch folder, that this config's runs and results go to."""
    scale = config.get("scale", MINI)
    return config.get("workdir") or ("." if scale == MINI else f"scales/{scale}")


def check(config: dict, source: str) -> None:
    place = PurePosixPath(workdir(config))
    if place.is_absolute() or ".." in place.parts:
        raise ConfigError(f"{source}: workdir: {place} must be a folder below the repository, e.g. scales/paper/<name>")
    scale = config.get("scale", MINI)
    if scale != MINI and str(place) == ".":
        raise ConfigError(f"{source}: workdir: '.' holds the committed mini results; a {scale}-scale config must "
                          f"write apart: set workdir: scales/{scale}/<name> (or leave it out for scales/{scale})")


def relocated(config: dict, launch_dir: str | Path) -> dict:
    """The config with every relative path a job opens (data set roots, weight files) re-expressed from
    the workdir, where the jobs run; unchanged for the mini scale. Relative, so a moved clone still matches."""
    place = Path(launch_dir) / workdir(config)
    if place.resolve() == Path(launch_dir).resolve():
        return config

    def moved(path):
        if not path or Path(path).is_absolute():
            return path
        return os.path.relpath(Path(launch_dir) / path, place)

    for dataset in config["datasets"].values():
        if dataset.get("root"):
            dataset["root"] = moved(dataset["root"])
    config["weights"] = {name: moved(path) for name, path in config["weights"].items()}
    return config
