# Phase 3: every metrics.json of a study -> results/ (tables, figures, DVC metrics).


rule study_report:
    input:
        study_metrics,
    output:
        multiext("results/tables/{study}", ".md", ".tex", ".csv"),
        report("results/tables/{study}.html", caption="../report/study.rst", category="Studies", subcategory="{study}"),
        report(
            "results/figures/{study}_usage_vs_codebook_size.png",
            caption="../report/study.rst",
            category="Studies",
            subcategory="{study}",
        ),
        "results/figures/{study}_usage_vs_codebook_size.pdf",
        "results/metrics/{study}.json",
    params:
        settings=study_settings_file,
    log:
        "logs/report/{study}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        study_report_command("{wildcards.study}", "{params.settings:q}") + " > {log} 2>&1"


rule convergence_report:
    input:
        convergence_curves,
    output:
        multiext("results/tables/{study}_over_steps", ".md", ".csv"),
        report(
            "results/tables/{study}_over_steps.html",
            caption="../report/convergence.rst",
            category="Convergence",
            subcategory="{study}",
        ),
        report(
            "results/figures/{study}_over_steps.png",
            caption="../report/convergence.rst",
            category="Convergence",
            subcategory="{study}",
        ),
        "results/figures/{study}_over_steps.pdf",
        "results/metrics/{study}_over_steps.json",
    params:
        settings=convergence_settings_file,
    log:
        "logs/report/{study}_over_steps.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro convergence --study {wildcards.study} --settings {params.settings:q}"
        " --runs runs --results results > {log} 2>&1"


rule generation_report:
    input:
        unpack(generation_report_inputs),
    output:
        multiext("results/tables/{generation_study}", ".md", ".tex", ".csv"),
        report(
            "results/tables/{generation_study}.html",
            caption="../report/generation.rst",
            category="Generation",
            subcategory="{generation_study}",
        ),
        report(
            "results/figures/{generation_study}_samples.png",
            caption="../report/generation.rst",
            category="Generation",
            subcategory="{generation_study}",
        ),
        "results/figures/{generation_study}_samples.pdf",
        report(
            "results/figures/{generation_study}_quality_over_training.png",
            caption="../report/generation.rst",
            category="Generation",
            subcategory="{generation_study}",
        ),
        "results/figures/{generation_study}_quality_over_training.pdf",
        "results/metrics/{generation_study}.json",
    params:
        settings=generation_study_settings_file,
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


# A failed job stops its study's report rule. With --keep-going every other job still
# runs; then, for each study whose grid points all either finished or left a failure
# record, the report is built anyway, its failed rows marked with the reason.
# The terminal ends with what the run built, not with a log path (see the README on following a run).
onsuccess:
    end_of_run_summary(succeeded=True)


onerror:
    failures_to_readings()
    complete, incomplete = studies_with_recorded_failures(config["run_studies"])
    for study in incomplete:
        print(f"vqrepro: a grid point of {study} failed (see its failure.json); run again with --keep-going"
              " to train the rest and get a table that marks the failed points")
    for study in complete:
        shell(
            f"mkdir -p logs/report && {study_report_command(study, '{settings:q}')}"
            f" --allow-missing > logs/report/{study}.partial.log 2>&1",
            settings=settings_file(config["studies"][study]),
        )
        print(f"vqrepro: results/tables/{study}.md marks the failed grid points (logs/report/{study}.partial.log)")
        for name in (r for r in reproductions_to_run if config["reproductions"][r]["study"] == study):
            shell(
                f"{reproduction_command(name, '{settings:q}')} > logs/report/{name}.partial.log 2>&1",
                settings=reproduction_settings_file(SimpleNamespace(reproduction=name)),
            )
            print(f"vqrepro: results/tables/{name}.md (a paper table from {study}) marks them too")
    end_of_run_summary(succeeded=False)
