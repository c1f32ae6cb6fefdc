"""A run's identity: its key, its folder, and the name of every file it writes.

One place for these, so the rules, the training loop, the report and the summary agree.
A tokenizer run lives in ``runs/<study>/<dataset>/<quantizer>/<point>/seed<s>/``: a reading of
the trained run in ``runs/trained/<dataset>/<name>/`` that every study needing the same weights
shares (vqrepro/sharing.py), with the same files as that run at the study's step. A prior
trained on its tokens in ``prior_<prior>_seed<s>/`` below it, a classifier used to score
samples in ``runs/classifiers/<dataset>/<classifier>/``. The patterns below are Snakemake
wildcard patterns; the keys fill them in. This module imports nothing heavy: the Snakefile
reads it at parse time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .io import write_text

RUNS_DIR = "runs"
TOKENIZER_RUN = "{study}/{dataset}/{quantizer}/{point}/seed{seed}"
PRIOR_FOLDER = "prior_{prior}_seed{prior_seed}"  # below its tokenizer's run
PRIOR_RUN = f"{TOKENIZER_RUN}/{PRIOR_FOLDER}"
TRAINED_RUN = "trained/{dataset}/{trained}"  # vqrepro/sharing.py: TrainedRun.path
CLASSIFIER_RUN = "classifiers/{dataset}/{classifier}"
POINT_PATTERN = r"K\d+_D\d+(_B\d+)?"  # the run folder of one (K, D[, batch size]) point

# A tokenizer run's files
CHECKPOINT = "ckpt.pt"            # final weights, with a .sha256 sidecar
TRAIN_LOG = "train_log.csv"       # loss terms and batch statistics over steps
CONVERGENCE = "convergence.csv"   # whole-split usage, perplexity and MSE every training.eval_every steps
METRICS = "metrics.json"          # evaluation on the test split (and usage on the training split)
RESUME = "resume.pt"              # while training: where a killed job continues from
FAILURE_RECORD = "failure.json"   # why the last attempt at this grid point failed
TOKENS = "tokens_{split}.pt"      # the split encoded to code indices (stage 2's data)
# A prior run's files
PRIOR = "prior.pt"
PRIOR_LOG = "prior_log.csv"
SAMPLES = "samples.pt"
GENERATION = "generation_{classifier}.json"  # the samples scored by one classifier
# A classifier run's files
CLASSIFIER = "classifier.pt"
CLASSIFIER_METRICS = "classifier_metrics.json"


# A job's settings slice is a file named by its content (workflow/rules/common.smk, settings_file).
SETTINGS_DIR = ".snakemake/vqrepro/settings"


def settings_path(text: str) -> str:
    """Where the settings slice whose JSON is ``text`` is kept."""
    import hashlib

    return f"{SETTINGS_DIR}/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def run_file(run: str, name: str) -> str:
    """The path of file ``name`` in run folder ``run`` (a pattern or a key's path): runs/<run>/<name>."""
    return f"{RUNS_DIR}/{run}/{name}"


def log_file(run: str, name: str) -> str:
    """Where the job writing ``run``'s file keeps its log: logs/runs/<run>/<name>."""
    return f"logs/{RUNS_DIR}/{run}/{name}"


def cost_file(log: str) -> str:
    """Where Snakemake's ``benchmark:`` record of the job logging to ``log`` goes (wall and CPU seconds,
    peak memory): logs/cost/<the log's path less logs/, .tsv>; benchmarks/run_cost.py sums them."""
    return f"logs/cost/{log.removeprefix('logs/').removesuffix('.log')}.tsv"


# The rules' wildcard patterns of one file in each kind of run folder.
def in_tokenizer_run(name: str) -> str:
    return run_file(TOKENIZER_RUN, name)


def in_trained_run(name: str) -> str:
    return run_file(TRAINED_RUN, name)


def in_prior_run(name: str) -> str:
    return run_file(PRIOR_RUN, name)


def in_classifier_run(name: str) -> str:
    return run_file(CLASSIFIER_RUN, name)


def checksum_of(path: str) -> str:
    """The SHA-256 sidecar that io.save_tensors writes next to a tensor file."""
    return f"{path}.sha256"


@dataclass(frozen=True)
class RunKey:
    """One grid point of a study; its path is the run's identity."""

    study: str
    dataset: str
    quantizer: str
    codebook_size: int
    code_dim: int
    seed: int
    batch_size: int | None = None  # set only in studies with a batch_sizes axis

    @property
    def point(self) -> str:
        batch = f"_B{self.batch_size}" if self.batch_size is not None else ""
        return f"K{self.codebook_size}_D{self.code_dim}{batch}"

    @property
    def path(self) -> str:
        return TOKENIZER_RUN.format(study=self.study, dataset=self.dataset, quantizer=self.quantizer,
                                    point=self.point, seed=self.seed)

    def file(self, name: str) -> str:
        return run_file(self.path, name)

    @staticmethod
    def parse_point(point: str) -> tuple[int, int, int | None]:
        """"K64_D8" -> (64, 8, None); "K64_D8_B16" -> (64, 8, 16)."""
        parts = point.split("_")
        batch = int(parts[2][1:]) if len(parts) == 3 else None
        return int(parts[0][1:]), int(parts[1][1:]), batch

    @classmethod
    def from_wildcards(cls, wildcards) -> "RunKey":
        codebook_size, code_dim, batch_size = cls.parse_point(wildcards.point)
        return cls(wildcards.study, wildcards.dataset, wildcards.quantizer, codebook_size, code_dim,
                   int(wildcards.seed), batch_size)


@dataclass(frozen=True)
class PriorKey:
    """One prior trained on one tokenizer's tokens."""

    tokenizer: RunKey
    prior: str
    seed: int

    @property
    def path(self) -> str:
        return f"{self.tokenizer.path}/{PRIOR_FOLDER.format(prior=self.prior, prior_seed=self.seed)}"

    def file(self, name: str) -> str:
        return run_file(self.path, name)


def classifier_file(dataset: str, classifier: str, name: str) -> str:
    """A file of the classifier run ``classifier`` trained on ``dataset``."""
    return in_classifier_run(name).format(dataset=dataset, classifier=classifier)


def failure_reason(run_dir: str | Path) -> str | None:
    """One line from the run's failure record (error, step, first line of the message), or None."""
    record = Path(run_dir) / FAILURE_RECORD
    if not record.exists():
        return None
    failure = json.loads(record.read_text())
    return f"{failure['error']} at step {failure['step']}: {failure['message'].splitlines()[0]}"


def record_failure(out_dir: Path, err: Exception, step: int, digest: str) -> None:
    """Leave the reason next to the run, so a report made with --keep-going can mark the grid point."""
    write_text(out_dir / FAILURE_RECORD, json.dumps(
        {"error": type(err).__name__, "message": str(err), "step": step, "settings_hash": digest}, indent=1))
