# The pipeline's own feature classifier (for an offline Fréchet distance of samples; never called FID).


rule train_feature_classifier:
    input:
        "data/{dataset}/train.pt",
        "data/{dataset}/test.pt",
    output:
        model="runs/classifiers/{dataset}/{classifier}/classifier.pt",
        checksum="runs/classifiers/{dataset}/{classifier}/classifier.pt.sha256",
        metrics="runs/classifiers/{dataset}/{classifier}/classifier_metrics.json",
    params:
        settings=classifier_settings_file,
    log:
        "logs/classifiers/{dataset}/{classifier}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train-classifier --settings {params.settings:q} --data data/{wildcards.dataset}"
        " --out {output.model} --threads {threads} > {log} 2>&1"
