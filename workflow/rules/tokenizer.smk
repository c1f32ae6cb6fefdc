# Phase 2: one tokenizer per grid point (study x quantizer x codebook size x code dimension x seed),
# then its metrics on the whole test split. GPU when present (the job picks CUDA automatically).


rule train_tokenizer:
    input:
        "data/{dataset}/train.pt",
    output:
        ckpt=RUN_DIR + "/ckpt.pt",
        checksum=RUN_DIR + "/ckpt.pt.sha256",
        log_csv=RUN_DIR + "/train_log.csv",
    params:
        settings=train_json,
    log:
        "logs/" + RUN_DIR + "/train.log",
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "{PYTHON} -m vqrepro train --settings {params.settings:q} --data data/{wildcards.dataset}"
        " --out $(dirname {output.ckpt:q}) --threads {threads} > {log} 2>&1"


rule eval_tokenizer:
    input:
        ckpt=RUN_DIR + "/ckpt.pt",
        test="data/{dataset}/test.pt",
    output:
        RUN_DIR + "/metrics.json",
    params:
        settings=eval_json,
    log:
        "logs/" + RUN_DIR + "/eval.log",
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "{PYTHON} -m vqrepro evaluate --ckpt {input.ckpt} --settings {params.settings:q}"
        " --data data/{wildcards.dataset} --out {output} --threads {threads} > {log} 2>&1"
