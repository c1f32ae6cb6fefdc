# The pipeline's own feature classifier (for an offline Fréchet distance of samples; never called FID).


rule train_feature_classifier:
    input:
        "data/{dataset}/train.pt",
        "data/{dataset}/test.pt",
    output:
        model=runs.in_classifier_run(runs.CLASSIFIER),
        checksum=runs.checksum_of(runs.in_classifier_run(runs.CLASSIFIER)),
        metrics=runs.in_classifier_run(runs.CLASSIFIER_METRICS),
    params:
        settings=classifier_settings_file,
    log:
        "logs/classifiers/{dataset}/{classifier}.log",
    benchmark:
        runs.cost_file("logs/classifiers/{dataset}/{classifier}.log"),
    conda:
        "../envs/vqrepro.yaml"
    threads: config["compute"]["threads_per_job"]
    resources:
        gpu=config["compute"]["gpus_per_job"],
    shell:
        "python -m vqrepro train-classifier --settings {params.settings:q} --data data/{wildcards.dataset}"
        " --out {output.model} --threads {threads} > {log} 2>&1"
