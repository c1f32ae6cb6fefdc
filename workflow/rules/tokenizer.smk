# Phase 2: tokenizers. Each distinct set of weights is trained once (vqrepro/sharing.py): one job
# per trained run in runs/trained/<dataset>/<name>/, trained to the longest step any study reads,
# leaving a snapshot (weights and metrics) at every shorter study's step. Each grid point of a
# study is then a reading of it, copied to runs/<study>/<dataset>/<quantizer>/<point>/seed<s>/ by a
# local rule (no torch: ~0.1 s): renaming a study or adding one that reads runs already trained
# retrains nothing. Training and evaluation share one process, as a second job
# would import torch again (docs/benchmarks.md). GPU when present (the job picks CUDA itself).
# The evaluation settings are part of the job, so changing them re-runs it; `python -m vqrepro
# evaluate` re-scores one checkpoint by hand.


localrules:
    read_tokenizer_run,


rule train_tokenizer:
    input:
        "data/{dataset}/train.pt",
        "data/{dataset}/test.pt",
    output:
        ckpt=runs.in_trained_run(runs.CHECKPOINT),
        checksum=runs.checksum_of(runs.in_trained_run(runs.CHECKPOINT)),
        log_csv=runs.in_trained_run(runs.TRAIN_LOG),
        convergence=runs.in_trained_run(runs.CONVERGENCE),
        metrics=runs.in_trained_run(runs.METRICS),
    params:
        settings=trained_settings_file,
        readings=trained_readings_file,
        evaluation=eval_settings_file,
    log:
        runs.log_file(runs.TRAINED_RUN, "train.log"),
    benchmark:
        runs.cost_file(runs.log_file(runs.TRAINED_RUN, "train.log")),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train --settings {params.settings:q} --readings {params.readings:q}"
        " --data data/{wildcards.dataset} --out $(dirname {output.ckpt:q}) --threads {threads}"
        " --evaluate {params.evaluation:q} --metrics {output.metrics:q} > {log} 2>&1"


rule read_tokenizer_run:
    input:
        trained_run_outputs,
    output:
        ckpt=runs.in_tokenizer_run(runs.CHECKPOINT),
        checksum=runs.checksum_of(runs.in_tokenizer_run(runs.CHECKPOINT)),
        log_csv=runs.in_tokenizer_run(runs.TRAIN_LOG),
        convergence=runs.in_tokenizer_run(runs.CONVERGENCE),
        metrics=runs.in_tokenizer_run(runs.METRICS),
    params:
        reading=reading_settings_file,
    log:
        runs.log_file(runs.TOKENIZER_RUN, "read.log"),
    conda:
        "../envs/vqrepro.yaml"
    shell:
        "python -m vqrepro read-run --reading {params.reading:q} --out $(dirname {output.ckpt:q}) > {log} 2>&1"
