# Stage 2: a tokenizer's token grids -> a prior over them -> samples -> generation scores.


rule encode_tokens:
    input:
        ckpt=runs.in_tokenizer_run(runs.CHECKPOINT),
        split="data/{dataset}/{split}.pt",
    output:
        tokens=runs.in_tokenizer_run(runs.TOKENS),
        checksum=runs.checksum_of(runs.in_tokenizer_run(runs.TOKENS)),
    log:
        runs.log_file(runs.TOKENIZER_RUN, "tokens_{split}.log"),
    benchmark:
        runs.cost_file(runs.log_file(runs.TOKENIZER_RUN, "tokens_{split}.log")),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro encode-tokens --ckpt {input.ckpt} --data data/{wildcards.dataset} --split {wildcards.split}"
        " --out {output.tokens} --threads {threads} > {log} 2>&1"


rule train_prior:
    input:
        runs.in_tokenizer_run(runs.TOKENS.format(split="train")),
    output:
        prior=runs.in_prior_run(runs.PRIOR),
        checksum=runs.checksum_of(runs.in_prior_run(runs.PRIOR)),
        log_csv=runs.in_prior_run(runs.PRIOR_LOG),
    params:
        settings=prior_settings_file,
    log:
        runs.log_file(runs.PRIOR_RUN, "train.log"),
    benchmark:
        runs.cost_file(runs.log_file(runs.PRIOR_RUN, "train.log")),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train-prior --settings {params.settings:q} --tokens {input} --seed {wildcards.prior_seed}"
        " --out $(dirname {output.prior:q}) --threads {threads} > {log} 2>&1"


rule sample_prior:
    input:
        prior=runs.in_prior_run(runs.PRIOR),
        ckpt=runs.in_tokenizer_run(runs.CHECKPOINT),
    output:
        samples=runs.in_prior_run(runs.SAMPLES),
        checksum=runs.checksum_of(runs.in_prior_run(runs.SAMPLES)),
    params:
        settings=sampling_settings_file,
    log:
        runs.log_file(runs.PRIOR_RUN, "sample.log"),
    benchmark:
        runs.cost_file(runs.log_file(runs.PRIOR_RUN, "sample.log")),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro sample-prior --settings {params.settings:q} --prior {input.prior} --ckpt {input.ckpt}"
        " --out {output.samples} --threads {threads} > {log} 2>&1"


rule eval_generation:
    input:
        samples=runs.in_prior_run(runs.SAMPLES),
        prior=runs.in_prior_run(runs.PRIOR),
        tokens=runs.in_tokenizer_run(runs.TOKENS.format(split="test")),
        test="data/{dataset}/test.pt",
        classifier=runs.in_classifier_run(runs.CLASSIFIER),
    output:
        runs.in_prior_run(runs.GENERATION),
    params:
        settings=sampling_settings_file,
    log:
        runs.log_file(runs.PRIOR_RUN, "eval_{classifier}.log"),
    benchmark:
        runs.cost_file(runs.log_file(runs.PRIOR_RUN, "eval_{classifier}.log")),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro evaluate-generation --settings {params.settings:q} --samples {input.samples}"
        " --prior {input.prior} --tokens {input.tokens} --data data/{wildcards.dataset}"
        " --classifier {input.classifier} --out {output} --threads {threads} > {log} 2>&1"
