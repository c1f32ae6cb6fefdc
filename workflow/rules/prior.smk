# Stage 2: a tokenizer's token grids -> a prior over them -> samples -> generation scores.


rule encode_tokens:
    input:
        ckpt="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/ckpt.pt",
        split="data/{dataset}/{split}.pt",
    output:
        tokens="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/tokens_{split}.pt",
        checksum="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/tokens_{split}.pt.sha256",
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/tokens_{split}.log",
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
        "runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/tokens_train.pt",
    output:
        prior="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/prior.pt",
        checksum="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/prior.pt.sha256",
        log_csv="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/prior_log.csv",
    params:
        settings=prior_settings_file,
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/train.log",
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
        prior="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/prior.pt",
        ckpt="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/ckpt.pt",
    output:
        samples="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/samples.pt",
        checksum="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/samples.pt.sha256",
    params:
        settings=sampling_settings_file,
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/sample.log",
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
        samples="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/samples.pt",
        prior="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/prior.pt",
        tokens="runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/tokens_test.pt",
        test="data/{dataset}/test.pt",
        classifier="runs/classifiers/{dataset}/{classifier}/classifier.pt",
    output:
        "runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/generation_{classifier}.json",
    params:
        settings=sampling_settings_file,
    log:
        "logs/runs/{study}/{dataset}/{quantizer}/{point}/seed{seed}/prior_{prior}_seed{prior_seed}/eval_{classifier}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro evaluate-generation --settings {params.settings:q} --samples {input.samples}"
        " --prior {input.prior} --tokens {input.tokens} --data data/{wildcards.dataset}"
        " --classifier {input.classifier} --out {output} --threads {threads} > {log} 2>&1"
