# Phase 4: the papers' tables and figures (reproductions), their claims, and the 2-D toy demonstrations.


rule reproduction_report:
    input:
        runs=reproduction_inputs,
        paper_numbers=reproduction_paper_numbers,
    output:
        report(
            "results/figures/{reproduction}_figure.png",
            caption="../report/reproduction.rst",
            category="Reproductions",
            subcategory=reproduction_paper,
        ),
        "results/figures/{reproduction}_figure.pdf",
        report(
            "results/tables/{reproduction}.html",
            caption="../report/reproduction.rst",
            category="Reproductions",
            subcategory=reproduction_paper,
        ),
        multiext("results/tables/{reproduction}", ".md", ".tex", ".csv"),
        "results/metrics/{reproduction}.json",
        report(
            "results/paper_vs_repro/{reproduction}.html",
            caption="../report/paper_vs_repro.rst",
            category="Paper vs reproduction",
            subcategory=reproduction_paper,
        ),
        "results/paper_vs_repro/{reproduction}.md",
    params:
        settings=reproduction_settings_file,
    log:
        "logs/report/{reproduction}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        reproduction_command("{wildcards.reproduction}", "{params.settings:q}") + " > {log} 2>&1"


rule claims:
    input:
        claims_inputs,
    output:
        claims="results/claims.md",
        claims_page=report("results/claims.html", caption="../report/claims.rst", category="Claims"),
        index="results/paper_vs_repro/index.md",
        index_page=report("results/paper_vs_repro/index.html", caption="../report/comparison_index.rst", category="Claims"),
        counts="results/metrics/claims.json",
    params:
        settings=claims_settings_file,
    log:
        "logs/report/claims.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro claims --settings {params.settings:q} --results results --out {output.claims}"
        " --index {output.index} --counts {output.counts} > {log} 2>&1"


rule toy_demo:
    output:
        report("results/figures/toy_{toy}.png", caption="../report/toy.rst", category="Toy demonstrations"),
        "results/figures/toy_{toy}.pdf",
        "results/metrics/toy_{toy}.json",
    params:
        settings=toy_settings_file,
    log:
        "logs/toys/{toy}.log",
    conda:
        "../envs/vqrepro.yaml"
    threads: 1
    shell:
        "python -m vqrepro toy --name {wildcards.toy} --settings {params.settings:q}"
        " --figure results/figures/toy_{wildcards.toy} --metrics results/metrics/toy_{wildcards.toy}.json > {log} 2>&1"
