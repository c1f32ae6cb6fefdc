# Phase 1: each data set is prepared once, with a seeded fixed train/test split.


rule prepare_data:
    output:
        multiext("data/{dataset}/train.pt", "", ".sha256"),
        multiext("data/{dataset}/test.pt", "", ".sha256"),
        info="data/{dataset}/info.json",
    params:
        settings=dataset_json,
    log:
        "logs/prepare_data/{dataset}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro prepare-data --name {wildcards.dataset} --settings {params.settings:q}"
        " --out data/{wildcards.dataset} > {log} 2>&1"
