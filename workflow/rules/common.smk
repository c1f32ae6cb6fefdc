# Shared by every rule: the validated config, the grid, and the settings slice of each job.
import json
import sys

from vqrepro import config as vqconfig

try:
    vqconfig.check(config, "params.yaml (with any --configfile overrides)")
except vqconfig.ConfigError as err:
    sys.exit(f"vqrepro: invalid configuration: {err}")



wildcard_constraints:
    study=r"[A-Za-z0-9_]+",
    dataset=r"[A-Za-z0-9_]+",
    quantizer=r"[A-Za-z0-9_]+",
    codebook_size=r"\d+",
    code_dim=r"\d+",
    seed=r"\d+",


def run_key(wildcards):
    return vqconfig.RunKey(
        wildcards.study,
        wildcards.dataset,
        wildcards.quantizer,
        int(wildcards.codebook_size),
        int(wildcards.code_dim),
        int(wildcards.seed),
    )


def as_json(settings):
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def dataset_json(wildcards):
    return as_json(vqconfig.dataset_settings(config, wildcards.dataset))


def train_json(wildcards):
    return as_json(vqconfig.train_settings(config, run_key(wildcards)))


def eval_json(wildcards):
    return as_json(vqconfig.eval_settings(config))


def study_json(wildcards):
    return as_json(config["studies"][wildcards.study])


def study_metrics(wildcards):
    return study_metrics_all([wildcards.study])


def study_metrics_all(studies):
    return [f"runs/{key.path}/metrics.json" for study in studies for key in vqconfig.grid(config, study)]


def study_reports(studies):
    return [f"results/tables/{study}.md" for study in studies]
