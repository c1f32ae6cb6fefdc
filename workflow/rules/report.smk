# Phase 3: every metrics.json of a study -> results/ (tables, figures, DVC metrics).


rule study_report:
    input:
        study_metrics,
    output:
        multiext("results/tables/{study}", ".md", ".tex", ".csv"),
        multiext("results/figures/{study}_usage_vs_codebook_size", ".png", ".pdf"),
        "results/metrics/{study}.json",
    params:
        settings=study_json,
    log:
        "logs/report/{study}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro report --study {wildcards.study} --settings {params.settings:q}"
        " --runs runs --results results > {log} 2>&1"


rule generation_report:
    input:
        unpack(generation_report_inputs),
    output:
        multiext("results/tables/{generation_study}", ".md", ".tex", ".csv"),
        multiext("results/figures/{generation_study}_samples", ".png", ".pdf"),
        multiext("results/figures/{generation_study}_quality_over_training", ".png", ".pdf"),
        "results/metrics/{generation_study}.json",
    params:
        settings=generation_study_json,
        dataset=generation_dataset,
    log:
        "logs/report/{generation_study}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro generation-report --study {wildcards.generation_study} --settings {params.settings:q}"
        " --dataset {params.dataset} --classifier-metrics {input.classifier_metrics}"
        " --runs runs --results results > {log} 2>&1"
