"""The papers' catalogues: one file per paper (papers/<paper>.yaml), merged into the config.

A catalogue holds the facts about one paper, not settings a user tunes::

    paper: NS-VQ                         # the name its reproductions and claims carry
    title: "Beyond Stationarity: ..."    # shown in docs and messages
    published: [nsvq_table2_celebahq.csv, ...]   # its published tables (vqrepro/paper_numbers/)
    studies: {...}                       # the studies that exist only for this paper
    reproductions: {...}                 # its tables and figures (see params.yaml's comments)
    claims: [...]                        # its claims (vqrepro/claims.py)
    toys: {...}                          # its 2-D demonstrations

params.yaml lists the catalogues to load under ``papers:`` (paths relative to the repository).
Entries of the config itself merge over a catalogue's (a paper config may re-point a study or a
reproduction's published rows); claims from the config are added after the catalogues'.
Each entry remembers its file, so that a validation error names the catalogue and the key there.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import ConfigError
from .layering import update_config, yaml_error_message

CATALOGUE_KEYS = {"paper", "title", "published", "studies", "reproductions", "claims", "toys"}
NAMED_SECTIONS = ("studies", "reproductions", "toys")
REPOSITORY = Path(__file__).resolve().parents[1]


def read_catalogue(path: Path) -> dict:
    """One catalogue file, its top level checked (the entries are checked with the merged config)."""
    try:
        catalogue = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: paper catalogue not found; fix the entry under papers: in params.yaml "
                          "(paths are relative to the repository)") from None
    except yaml.YAMLError as err:
        raise ConfigError(yaml_error_message(path, err)) from None
    if not isinstance(catalogue, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {sorted(CATALOGUE_KEYS)}")
    unknown = sorted(set(catalogue) - CATALOGUE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a catalogue has {sorted(CATALOGUE_KEYS)}")
    if not isinstance(catalogue.get("paper"), str) or not catalogue["paper"]:
        raise ConfigError(f"{path}: paper: required, the paper's short name (e.g. NS-VQ) that its entries carry")
    for section in NAMED_SECTIONS:
        if not isinstance(catalogue.get(section, {}), dict):
            raise ConfigError(f"{path}: {section}: expected a mapping of name -> entry")
    if not isinstance(catalogue.get("claims", []), list):
        raise ConfigError(f"{path}: claims: expected a list of claims")
    published = catalogue.get("published", [])
    if not isinstance(published, list) or not all(isinstance(f, str) for f in published):
        raise ConfigError(f"{path}: published: expected a list of CSV file names under vqrepro/paper_numbers/")
    from .config import paper_numbers_dir

    for i, name in enumerate(published):
        if not (paper_numbers_dir() / name).is_file():
            raise ConfigError(f"{path}: published[{i}]: {name} is not in vqrepro/paper_numbers/; add the CSV there "
                              "(see its README) or fix the name")
    for kind in ("reproductions", "claims"):
        entries = catalogue.get(kind, {})
        for key, entry in (entries.items() if isinstance(entries, dict) else enumerate(entries)):
            where = f"{kind}.{key}" if isinstance(key, str) else f"{kind}[{key}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {where}: expected a mapping")
            entry.setdefault("paper", catalogue["paper"])
            if entry["paper"] != catalogue["paper"]:
                raise ConfigError(f"{path}: {where}.paper: {entry['paper']!r}, but this file is the catalogue of "
                                  f"{catalogue['paper']!r}; move the entry to its paper's file")
    for name, spec in catalogue.get("reproductions", {}).items():
        numbers = spec.get("paper_numbers")
        if isinstance(numbers, dict) and numbers.get("file") not in published:
            raise ConfigError(f"{path}: reproductions.{name}.paper_numbers.file: {numbers.get('file')!r} is not "
                              f"among this paper's published tables ({published}); list it under published")
    return catalogue


def with_papers(config: dict, source: str, root: Path = REPOSITORY) -> tuple[dict, dict[str, str]]:
    """(the config with every listed catalogue merged in, origins): origins maps a merged key such as
    ``reproductions.nsvq_table2`` or ``claims[3]`` to ``"papers/nsvq.yaml: claims[1]"``."""
    files = config.get("papers") or []
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise ConfigError(f"{source}: papers: expected a list of catalogue files, e.g. [papers/nsvq.yaml]")
    merged = {key: value for key, value in config.items() if key != "papers"}
    origins: dict[str, str] = {}
    owner: dict[tuple[str, str], str] = {}
    claims: list[dict] = []
    for name in files:
        path = Path(name) if Path(name).is_absolute() else root / name
        catalogue = read_catalogue(path)
        for section in NAMED_SECTIONS:
            for entry_name, entry in catalogue.get(section, {}).items():
                if (section, entry_name) in owner:
                    raise ConfigError(f"{name}: {section}.{entry_name}: also defined in {owner[section, entry_name]}; "
                                      "names are shared by every paper, so rename one")
                owner[section, entry_name] = name
                base = merged.setdefault(section, {})
                override = base.get(entry_name)
                if override is None:  # the config does not touch it: an error there is the catalogue's
                    origins[f"{section}.{entry_name}"] = f"{name}: {section}.{entry_name}"
                base[entry_name] = update_config(dict(entry), override) if isinstance(override, dict) else entry
        for i, claim in enumerate(catalogue.get("claims", [])):
            origins[f"claims[{len(claims)}]"] = f"{name}: claims[{i}]"
            claims.append(claim)
    merged["claims"] = claims + list(config.get("claims") or [])
    merged["papers"] = []  # merged: the result stands alone (written out, it loads as it is)
    return merged, origins


def attribute(err: ConfigError, source: str, origins: dict[str, str]) -> ConfigError:
    """An error about a catalogue's entry, re-addressed to that file and its key there."""
    message = str(err)
    if not origins or not message.startswith(f"{source}: "):
        return err
    rest = message[len(source) + 2:]
    match = re.match(r"(studies|reproductions|toys)\.[A-Za-z0-9_]+|claims\[\d+\]", rest)
    if match and match.group(0) in origins:
        return ConfigError(origins[match.group(0)] + rest[match.end():])
    return err
