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
