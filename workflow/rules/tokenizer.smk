# Phase 2: one tokenizer per grid point (study x quantizer x codebook size x code dimension x seed),
# trained and then evaluated on the whole test split in one job: one process per grid point, as a
# second job would import torch again (seconds each, a large share of the mini run; docs/benchmarks.md).
# GPU when present (the job picks CUDA automatically). The evaluation settings are part of the job,
# so changing them re-runs it; `python -m vqrepro evaluate` re-scores one checkpoint by hand.


rule train_tokenizer:
    input:
        "data/{dataset}/train.pt",
        "data/{dataset}/test.pt",
    output:
        ckpt=runs.in_tokenizer_run(runs.CHECKPOINT),
        checksum=runs.checksum_of(runs.in_tokenizer_run(runs.CHECKPOINT)),
        log_csv=runs.in_tokenizer_run(runs.TRAIN_LOG),
        convergence=runs.in_tokenizer_run(runs.CONVERGENCE),
        metrics=runs.in_tokenizer_run(runs.METRICS),
    params:
        settings=train_settings_file,
        evaluation=eval_settings_file,
    log:
        runs.log_file(runs.TOKENIZER_RUN, "train.log"),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train --settings {params.settings:q} --data data/{wildcards.dataset}"
        " --out $(dirname {output.ckpt:q}) --threads {threads}"
        " --evaluate {params.evaluation:q} --metrics {output.metrics:q} > {log} 2>&1"
