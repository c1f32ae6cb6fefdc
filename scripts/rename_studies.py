"""Rename studies in an existing working copy without retraining anything.

A study's name is part of its grid points' folders (runs/<study>/...), its result files and
Snakemake's record of every job (.snakemake/metadata, the settings slices in .snakemake/vqrepro/settings).
The trained runs themselves (runs/trained/, vqrepro/sharing.py) carry no study name, so a rename
never retrains a tokenizer; without this script it would still copy every grid point out again
and redo what depends on those copies (token grids, priors, samples, reports). After params.yaml
renames a study, this moves all three, so that `snakemake -n` finds the renamed study up to date:
a rename is not new science.

    python scripts/rename_studies.py                  # the renames of issue 22 (mini names -> names by what they reproduce)
    python scripts/rename_studies.py old=new [...]    # any others
    dvc commit reproduce                              # then record the moved runs/ in dvc.lock

Run it in the folder a scale writes to (the repository root for mini, scales/<...>/ otherwise),
with no Snakemake run going. Figures keep the old name in their title until their report re-runs.
"""
from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

from vqrepro.runs import SETTINGS_DIR, settings_path

# Issue 22: studies were named by their mini data set; they are now named by what they reproduce.
ISSUE_22 = {
    "mnist_nsvq_d3_convergence": "nsvq_d3_convergence", "mnist_nsvq_lr_sensitivity": "nsvq_lr_sensitivity",
    "mnist_nsvq_convergence": "nsvq_convergence", "mnist_cvq_convergence": "cvq_size_convergence",
    "photo_convergence": "cvq_usage_convergence", "digits_convergence": "cvq_dim_convergence",
    "photo_recon": "ste_recon", "photo_cvq_usage": "cvq_usage", "mnist_cvq_size": "cvq_size",
    "digits_cvq_dim": "cvq_dim", "digits_cvq_ablation": "cvq_ablation", "mnist_nsvq_grid": "nsvq_grid",
    "digits_nsvq_batch": "nsvq_batch", "digits_ste_classify": "ste_classify",
}
# The file names a study's reports write: results/{tables,figures,metrics}/<study><suffix>.
REPORT_SUFFIXES = ("_over_steps", "_usage_vs_codebook_size", ".")
METADATA_DIR = Path(".snakemake/metadata")


# Issue 22 renamed these training presets with the studies of the same name.
ISSUE_22_TRAINING = {old: ISSUE_22[old] for old in ("mnist_nsvq_convergence", "mnist_nsvq_lr_sensitivity",
                                                     "mnist_cvq_convergence", "photo_convergence", "digits_convergence")}
STUDY_FIELDS = ("study", "tokenizer_study")  # the keys of a settings slice whose value names a study


class Renamer:
    def __init__(self, mapping: dict[str, str], training: dict[str, str] | None = None):
        self.mapping, self.training = mapping, training or {}
        names = "|".join(re.escape(old) for old in sorted(mapping, key=len, reverse=True))
        self.word = re.compile(rf"(?<![A-Za-z0-9_])({names})(?![A-Za-z0-9_])")  # the name as a whole word
        suffixes = "|".join(re.escape(s) for s in REPORT_SUFFIXES)
        self.component = re.compile(rf"(?<![A-Za-z0-9_])({names})(?=/|$|{suffixes})")  # in a path

    def path(self, text: str) -> str:
        return self.component.sub(lambda m: self.mapping[m.group(1)], text)

    def text(self, text: str) -> str:
        return self.path(self.word.sub(lambda m: self.mapping[m.group(1)], text))

    def value(self, value, key: str | None = None):
        """A settings slice with the study names renamed where a name means a study: the value of a
        study field, a key of a convergence study's ``followers``; a model or preset that happens to
        share the name is left as it is (training presets only where ``training`` renames them)."""
        if isinstance(value, dict):
            return {(self.mapping.get(k, k) if key == "followers" else k): self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, str) and key in STUDY_FIELDS:
            return self.mapping.get(value, value)
        if isinstance(value, str) and key == "training":
            return self.training.get(value, value)
        return value


def renamed_settings(param: str, renamer: Renamer) -> str:
    """A job's params entry naming a settings slice -> the renamed slice's file (written here)."""
    old = Path(param.strip("'\""))
    if old.parent != Path(SETTINGS_DIR) or not old.exists():
        return param
    text = old.read_text().strip()
    data = json.loads(text)
    was_sorted = text == json.dumps(data, sort_keys=True, separators=(",", ":"))
    new_text = json.dumps(renamer.value(data), sort_keys=was_sorted, separators=(",", ":"))
    new = Path(settings_path(new_text))
    new.write_text(f"{new_text}\n")
    return param.replace(str(old), str(new))


def move_files(renamer: Renamer) -> int:
    moved = 0
    for top in ("runs", "logs", "results"):
        for path in sorted(Path(top).rglob("*"), key=lambda p: len(p.parts)) if Path(top).exists() else []:
            target = Path(renamer.path(str(path)))
            if target != path and path.exists():
                if target.exists():
                    sys.exit(f"rename_studies: {target} exists already; move it aside and run again")
                target.parent.mkdir(parents=True, exist_ok=True)
                path.rename(target)
                moved += 1
    for path in Path("results").rglob("*") if Path("results").exists() else []:
        if path.is_file() and path.suffix in (".md", ".csv", ".json", ".tex", ".html"):
            text = path.read_text(encoding="utf-8")
            if renamer.text(text) != text:
                path.write_text(renamer.text(text), encoding="utf-8")
    return moved


def rewrite_metadata(renamer: Renamer) -> int:
    rewritten = 0
    for record in sorted(METADATA_DIR.iterdir()) if METADATA_DIR.exists() else []:
        output = base64.urlsafe_b64decode(record.name).decode()
        meta = json.loads(record.read_text())
        new_meta = dict(meta, input=[renamer.path(p) for p in meta.get("input", [])],
                        log=[renamer.path(p) for p in meta.get("log", [])],
                        shellcmd=renamer.path(meta.get("shellcmd") or "") or meta.get("shellcmd"),
                        params=[renamed_settings(p, renamer) for p in meta.get("params", [])],
                        input_checksums={renamer.path(k): v for k, v in (meta.get("input_checksums") or {}).items()})
        new_output = renamer.path(output)
        if new_meta != meta or new_output != output:
            target = METADATA_DIR / base64.urlsafe_b64encode(new_output.encode()).decode()
            target.write_text(json.dumps(new_meta))
            if target != record:
                record.unlink()
            rewritten += 1
    return rewritten


def main(argv: list[str]) -> None:
    if any("=" not in arg for arg in argv):
        sys.exit("usage: python scripts/rename_studies.py [old=new ...]  (no arguments: the renames of issue 22)")
    mapping = dict(arg.split("=", 1) for arg in argv)
    renamer = Renamer(mapping) if mapping else Renamer(ISSUE_22, ISSUE_22_TRAINING)
    moved, rewritten = move_files(renamer), rewrite_metadata(renamer)
    print(f"rename_studies: moved {moved} files or folders and rewrote {rewritten} job records "
          f"({len(mapping)} studies). Next: `snakemake -n` should plan nothing; `dvc commit reproduce` records runs/.")


if __name__ == "__main__":
    main(sys.argv[1:])
