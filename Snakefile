# vqrepro: params.yaml -> prepared data -> one tokenizer per grid point -> metrics -> tables and figures.
# Settings live in params.yaml (paper scale: --configfile configs/paper/<x>.yaml on top).
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tokenizer.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        study_reports(config["run_studies"]),
