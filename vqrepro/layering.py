"""Config files read and layered as ``snakemake --configfile A B`` layers them on params.yaml.

Snakemake merges the ``--configfile`` files into one override, in the order given, then merges
that override into the Snakefile's ``configfile: "params.yaml"`` (snakemake.utils.update_config:
mappings merge key by key, anything else, lists included, is replaced). If params.yaml is absent
the override alone is the config. ``python -m vqrepro validate`` uses this module to check
exactly the config a Snakemake run would see, and to name the line and column of a YAML syntax
error, which Snakemake reports as a bare "Config file is not valid JSON or YAML".
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

BASE = "params.yaml"  # the Snakefile's configfile:, relative to the working directory


class ConfigFileError(ValueError):
    """A config file is missing, not YAML, or not a mapping; the message names the file (and line)."""


def _position(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def yaml_error_message(path: str | Path, err: yaml.YAMLError) -> str:
    """One line: the file, where the parser stopped, and why."""
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return f"{path}: not valid YAML: {err}"
    text = f"{path}, {_position(mark)}: not valid YAML: {err.problem}"
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and context_mark is not None and (context_mark.line, context_mark.column) != (mark.line, mark.column):
        text += f" ({context} at {_position(context_mark)})"
    elif context:
        text += f" ({context})"
    return text


def read(path: str | Path) -> dict:
    """One config file as a mapping."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigFileError(yaml_error_message(path, err)) from None
    if not isinstance(content, dict):
        raise ConfigFileError(f"{path}: expected a mapping of settings at the top level, "
                              f"got {type(content).__name__}")
    return content


def update_config(config: dict, overrides: Mapping) -> dict:
    """snakemake.utils.update_config, replicated (importing Snakemake would slow every `validate`):
    a mapping merges into a mapping key by key; a mapping over a non-mapping starts from {} (an
    empty mapping leaves the old value); anything else replaces."""
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            old = config.get(key, {})
            config[key] = update_config(old, value) if isinstance(old, Mapping) else (
                update_config({}, value) if value else old)
        else:
            config[key] = value
    return config


def layered(files: list[str | Path], base: str | Path = BASE) -> tuple[dict, str]:
    """(the config Snakemake would see with ``--configfile *files``, a name for it in messages)."""
    files = [f for f in files if Path(f).resolve() != Path(base).resolve()]  # the base itself is not an override
    override: dict = {}
    for path in files:
        update_config(override, read(path))
    if Path(base).exists():
        config, names = read(base), [str(base)]
    elif files:
        config, names = {}, []
    else:
        raise ConfigFileError(f"{base}: file not found; run from the repository's folder, or name config files")
    update_config(config, override)
    return config, " + ".join(names + [str(f) for f in files])
