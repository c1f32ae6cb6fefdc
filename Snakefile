# vqrepro: params.yaml -> prepared data -> one tokenizer per grid point -> metrics -> tables and figures.
# Settings live in params.yaml (paper scale: --configfile configs/paper/<x>.yaml on top).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# Absolute: a scale other than mini runs in its own folder (workflow/rules/common.smk), and the report re-reads it.
configfile: str(Path("params.yaml").resolve())


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/prior.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/paper.smk"


# Every grid point's metrics, not only the tables: in a fresh clone the committed
# tables exist already, and the run must still produce (and then report) its own.
rule all:
    default_target: True
    input:
        study_metrics_all(config["run_studies"]),
        tables_of(config["run_studies"]),
        convergence_reports(config["run_studies"]),
        generation_outputs(config["run_generation_studies"]),
        tables_of(config["run_generation_studies"]),
        paper_outputs(),
