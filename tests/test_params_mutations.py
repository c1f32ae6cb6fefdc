"""Mutation test of params.yaml: any bad edit of any setting is refused with one line naming the setting,
or accepted only where the schema accepts it too; never a traceback.

Each leaf of the merged config (the ``params`` fixture) gets mutants: a value of another type (a string
for a number, a number for a string, a mapping, a list), zero, negative and huge numbers, and deletion;
each mapping gets an unknown key. ``vqrepro.config.check`` must either refuse a mutant with one
``ConfigError`` line ``params.yaml: <key>: ...`` that names the key (or an entry holding it, or a key
under it), or accept it; an accepted mutant must pass the JSON schema, and must not have changed a
set (non-null) value's type.

One ``check`` takes 0.05-0.4 s (the memory estimate's meta-device builds dominate), and the config has
~1,550 leaves (~8,300 mutants, about 18 minutes on one core), so by default one leaf per *shape* is
mutated: leaves whose paths differ only in entry names (``training.<any preset>.steps``) or list
positions share a shape, and quantizer settings are told apart by method. That keeps every setting of
every section: ~1,200 mutants, about 1.5 minutes. ``VQREPRO_MUTATIONS=all`` mutates every leaf.
"""
from __future__ import annotations

import copy
import fnmatch
import functools
import os
import re
from dataclasses import dataclass

import pytest
import yaml

from vqrepro.config import SCHEMA_PATH, ConfigError, _key, check, schema_validator

SOURCE = "params.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
SECTIONS = sorted(SCHEMA["properties"])
UNKNOWN_KEY = "not_a_key"
HUGE_INT = 10**12
HUGE_FLOAT = 1e300
TYPE_CHANGES = ("wrong type", "mapping", "list")

# Sections whose keys are entry names a user picks (not names the schema fixes): the same setting
# under two entries is one shape.
NAMED_ENTRY_SECTIONS = {"datasets", "models", "quantizers", "training", "studies", "priors", "classifiers",
                        "generation_studies", "reproductions", "toys"}

# Values compared with a published CSV's cells (vqrepro.compare.norm_value): a number and a text are both
# a cell's value, so there a string for a number is no type error (a mapping or a list still is).
CSV_CELL_VALUES = ("reproductions.*.paper_numbers.aliases.*", "reproductions.*.paper_numbers.where.*",
                   "reproductions.*.rows.*.paper.*")

class _Delete:
    def __repr__(self):
        return "<deleted>"


DELETE = _Delete()


@dataclass(frozen=True)
class Mutant:
    path: tuple
    kind: str
    value: object  # DELETE: the key (or list item) is removed

    @property
    def key(self) -> str:
        return _key(self.path)

    def applied_to(self, config: dict) -> dict:
        mutant = copy.deepcopy(config)
        *parents, last = self.path
        holder = functools.reduce(lambda node, part: node[part], parents, mutant)
        if self.value is DELETE:
            del holder[last]
        else:
            holder[last] = copy.deepcopy(self.value)
        return mutant

    def __str__(self):
        return f"{self.key} <- {self.kind} {self.value!r}"


def unshared(node):
    """The config as a tree: YAML aliases (``notes: *nsvq_release_rows``) make two keys hold one list,
    and a mutant edits one key, not every key that happens to share its value."""
    if isinstance(node, dict):
        return {name: unshared(value) for name, value in node.items()}
    if isinstance(node, list):
        return [unshared(value) for value in node]
    return node


def leaves(node, path=()):
    """(path, value) of every scalar, and of every empty list or mapping (nothing below to mutate)."""
    if isinstance(node, dict) and node:
        for name, value in node.items():
            yield from leaves(value, (*path, name))
    elif isinstance(node, list) and node:
        for i, value in enumerate(node):
            yield from leaves(value, (*path, i))
    else:
        yield path, node


def mappings(node, path=()):
    """The path of every mapping, the top level included."""
    if isinstance(node, dict):
        yield path
        for name, value in node.items():
            yield from mappings(value, (*path, name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from mappings(value, (*path, i))


def shape(config: dict, path: tuple) -> tuple:
    """The path with entry names and list positions wildcarded; a quantizer preset keeps its method
    (``commit_weight`` of vq and of ema are different settings)."""
    parts = []
    for depth, part in enumerate(path):
        if isinstance(part, int):
            parts.append("[]")
        elif depth == 1 and path[0] in NAMED_ENTRY_SECTIONS:
            entry = config[path[0]].get(part)
            method = entry.get("method", "*") if isinstance(entry, dict) else "*"
            parts.append(f"<{method}>" if path[0] == "quantizers" else "*")
        elif depth == 3 and path[0] == "reproductions" and path[2] == "rows":  # rows: preset -> label
            parts.append("*")
        else:
            parts.append(part)
    return tuple(parts)


def mutations_of(value) -> list[tuple[str, object]]:
    """(kind, new value) of one leaf: other types, zero, negative and huge for numbers, deleted."""
    found = [("wrong type", 7 if isinstance(value, str) else "not a number"),
             ("mapping", {"not": "a scalar"}),
             ("list", [value])]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        huge = HUGE_FLOAT if isinstance(value, float) else HUGE_INT
        found += [("zero", type(value)(0)), ("negative", -abs(value) or type(value)(-1)), ("huge", huge)]
    return [*found, ("deleted", DELETE)]


def all_mutants(config: dict, every_leaf: bool) -> list[Mutant]:
    """The mutants of every leaf (or of the first leaf of each shape), and an unknown key in every mapping
    (or in the first mapping of each shape)."""
    seen = set()
    mutants = []
    for path, value in leaves(config):
        if path and (every_leaf or shape(config, path) not in seen):
            seen.add(shape(config, path))
            mutants += [Mutant(path, kind, new) for kind, new in mutations_of(value)]
    for path in mappings(config):
        added = (*path, UNKNOWN_KEY)
        if every_leaf or shape(config, added) not in seen:
            seen.add(shape(config, added))
            mutants.append(Mutant(added, "unknown key", 1))
    return mutants


def original(config: dict, path: tuple):
    return functools.reduce(lambda node, part: node[part], path, config)


def _mentions(message: str, key: str) -> bool:
    """``key`` is in the message as a whole key path (``training.mini`` is not in ``training.mini_x``), or
    as the start of a key under it (``training.mini.steps``)."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message) is not None


def names_the_key(message: str, path: tuple) -> bool:
    """The message names the key, a key under it, or a key holding it: an entry or list item
    (``quantizers.cls_alt``, ``claims[3]``: two levels down or more), or a section's own key together
    with the name of its child on the way (``compute: 'threads_per_job' is missing``)."""
    if any(_mentions(message, _key(path[:depth])) for depth in range(len(path), min(len(path), 2) - 1, -1)):
        return True
    holder, child = (_key(path[:1]), path[1]) if len(path) > 1 else ("(top level)", path[0])
    return _mentions(message, holder) and re.search(rf"\b{re.escape(str(child))}\b", message) is not None



@pytest.fixture(scope="module")
def config_tree(params) -> dict:
    return unshared(params)


def outcome(mutant_config: dict) -> str | None:
    """check()'s message for the mutant, None when accepted; any other exception propagates."""
    try:
        check(mutant_config, SOURCE)
    except ConfigError as err:
        return str(err)
    return None


def misbehaviour(config: dict, mutant: Mutant) -> str | None:
    """What the config check did wrong with one mutant; None when it behaved."""
    changed = mutant.applied_to(config)
    try:
        message = outcome(changed)
    except Exception as err:  # noqa: BLE001  (a traceback instead of a message: the defect looked for)
        return f"raised {type(err).__name__}: {str(err)[:200]}"
    if message is None:
        if not schema_validator().is_valid(changed):
            return "accepted, but the schema refuses it"
        # a null means unset: a value of any type may replace it
        if mutant.kind in TYPE_CHANGES and original(config, mutant.path) is not None and not (
                mutant.kind == "wrong type" and any(fnmatch.fnmatchcase(mutant.key, p) for p in CSV_CELL_VALUES)):
            return "accepted a value of another type"
        return None
    if "\n" in message or not message.startswith(f"{SOURCE}: "):
        return f"not one line starting with {SOURCE!r}: {message!r}"
    if not names_the_key(message, mutant.path):
        return f"the message does not name {mutant.key}: {message}"
    return None


def every_leaf() -> bool:
    return os.environ.get("VQREPRO_MUTATIONS") == "all"


def section_of(mutant: Mutant) -> str:
    """The top-level key a mutant edits; "(top level)" for the unknown key added there."""
    return mutant.path[0] if mutant.path[0] in SECTIONS else "(top level)"


def test_params_as_shipped_pass(config_tree):
    """The baseline: unmutated, nothing is refused (else every mutant would be refused for that)."""
    assert outcome(copy.deepcopy(config_tree)) is None


def test_mutants_cover_every_section_and_kind(config_tree):
    mutants = all_mutants(config_tree, every_leaf())
    sections = {section_of(m) for m in mutants}
    assert {name for name, value in config_tree.items() if value} | {"(top level)"} <= sections
    assert {m.kind for m in mutants} == {*TYPE_CHANGES, "zero", "negative", "huge", "deleted", "unknown key"}
    assert len(mutants) > 1000


@pytest.mark.parametrize("section", [*SECTIONS, "(top level)"])
def test_every_mutant_is_refused_naming_its_key_or_accepted_by_the_schema(config_tree, section):
    mutants = [m for m in all_mutants(config_tree, every_leaf()) if section_of(m) == section]
    failures = [f"{m}: {wrong}" for m in mutants if (wrong := misbehaviour(config_tree, m))]
    assert not failures, f"{len(failures)} of {len(mutants)} mutants misbehave:\n" + "\n".join(failures)
