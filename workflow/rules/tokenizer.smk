# Phase 2: one tokenizer per grid point (study x quantizer x codebook size x code dimension x seed),
# then its metrics on the whole test split. GPU when present (the job picks CUDA automatically).


rule train_tokenizer:
    input:
        "data/{dataset}/train.pt",
    output:
        ckpt="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/ckpt.pt",
        checksum="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/ckpt.pt.sha256",
        log_csv="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/train_log.csv",
        convergence="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/convergence.csv",
    params:
        settings=train_json,
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/train.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train --settings {params.settings:q} --data data/{wildcards.dataset}"
        " --out $(dirname {output.ckpt:q}) --threads {threads} > {log} 2>&1"


rule eval_tokenizer:
    input:
        ckpt="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/ckpt.pt",
        test="data/{dataset}/test.pt",
    output:
        "runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/metrics.json",
    params:
        settings=eval_json,
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/eval.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro evaluate --ckpt {input.ckpt} --settings {params.settings:q}"
        " --data data/{wildcards.dataset} --out {output} --threads {threads} > {log} 2>&1"
