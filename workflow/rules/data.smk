# Phase 1: each data set is prepared once, with a seeded fixed train/test split.
from vqrepro import image_folder


# An image folder lives outside the workflow, so Snakemake cannot see an edited image by itself.
# Listing every image as an input would show it, but at ImageNet's 1.3M files that makes each
# plan slow and each job record huge. Instead the job's settings carry a fingerprint of the
# folder (every image's path, size and modification time, from stat alone), and Snakemake's
# params trigger re-runs prepare_data, and so everything downstream, when it changes. The job
# itself reads, decodes and hashes every file (vqrepro/image_folder.py). Other sources get the
# settings unchanged, so their recorded params, and the runs built on them, stay up to date.
rule prepare_data:
    output:
        multiext("data/{dataset}/train.pt", "", ".sha256"),
        multiext("data/{dataset}/test.pt", "", ".sha256"),
        info="data/{dataset}/info.json",
    params:
        settings=lambda wildcards: settings_file(image_folder.with_fingerprint(
            vqconfig.dataset_settings(config, wildcards.dataset), f"data/{wildcards.dataset}/info.json")),
    log:
        "logs/prepare_data/{dataset}.log",
    benchmark:
        runs.cost_file("logs/prepare_data/{dataset}.log"),
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro prepare-data --name {wildcards.dataset} --settings {params.settings:q}"
        " --out data/{wildcards.dataset} > {log} 2>&1"
