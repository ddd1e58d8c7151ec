# From per-run records to tidy CSVs, tables, figures and the verification report (poolnas.analysis:
# aggregate, tables, figures, verify). These jobs read only results/ and paper/: they run on a fresh clone.

rule aggregate:
    message:
        f"aggregate: the records of {RESULTS}/runs into {len(CSVS)} CSVs"
    input:
        runs=groundtruth_records(made_only=True) + search_records(made_only=True),
        retrains=lambda w: retrain_records(w, made_only=True),
        extension_retrains=lambda w: extension_retrain_records(w, made_only=True),  # issue 17's, retrained
    output:
        CSV_FILES,
    log:
        f"{LOGS}/aggregate.log",
    params:
        poolnas=POOLNAS,
        results=lambda w, output: parent_of(output[0]),
        profile=PROFILE_ARG,  # the records are checked against the profile this run runs, a file's too
        data=DATA,
    localrule: True
    conda:
        "../environment.yml"
    shell:
        "{params.poolnas} aggregate --results {params.results} --profile {params.profile} --data-dir {params.data} "
        "2> {log}"


rule table:
    message:
        "table {wildcards.table}: {output[0]} (.csv, .tex, .md)"
    input:
        csvs=CSV_FILES,
        published=f"{PUBLISHED}/table1.csv",
    output:
        LAYOUT.table_files("{table}"),
    log:
        f"{LOGS}/tables/{{table}}.log",
    wildcard_constraints:
        table="|".join(plan.TABLE_NAMES),
    params:
        poolnas=POOLNAS,
        results=lambda w, input: parent_of(input.csvs[0]),
        published=lambda w, input: parent_of(input.published),
        tables=lambda w, output: parent_of(output[0]),
        profile=PROFILE_ARG,  # its studies' stands_for: which of our studies fills which of the paper's rows
    localrule: True
    conda:
        "../environment.yml"
    shell:
        "{params.poolnas} tables --results {params.results} --published {params.published} "
        "--out {params.tables} --only {wildcards.table} --profile {params.profile} 2> {log}"


rule figure:
    message:
        "figure {wildcards.figure}: {output.pdf} (and .png)"
    input:
        csvs=CSV_FILES,
        searches=search_records(made_only=True),  # figure 5 draws P(m|c) per epoch from one search record
    output:
        pdf=LAYOUT.figure_files("{figure}")[0],
        png=report(LAYOUT.figure_files("{figure}")[1], caption="captions/figure.rst", category="Figures"),
    log:
        f"{LOGS}/figures/{{figure}}.log",
    wildcard_constraints:
        figure="|".join(plan.FIGURE_NAMES),
    params:
        poolnas=POOLNAS,
        results=lambda w, input: parent_of(input.csvs[0]),
        figures=lambda w, output: parent_of(output.pdf),
        profile=PROFILE_ARG,  # its studies' stands_for: which of our studies fills which of the paper's rows
    localrule: True
    conda:
        "../environment.yml"
    shell:
        "{params.poolnas} figures --results {params.results} --out {params.figures} --only {wildcards.figure} "
        "--profile {params.profile} 2> {log}"


rule verification:
    message:
        "verification report: {output}"
    input:
        csvs=CSV_FILES,
        published=f"{PUBLISHED}/table1.csv",
        released=RELEASED_CSV,  # the authors' per-config table, committed (paper/released/README.md)
    output:
        report(LAYOUT.verification, category="Verification"),
    log:
        f"{LOGS}/verify.log",
    params:
        poolnas=POOLNAS,
        results=lambda w, input: parent_of(input.csvs[0]),
        published=lambda w, input: parent_of(input.published),
        profile=PROFILE_ARG,
    localrule: True
    conda:
        "../environment.yml"
    shell:
        "{params.poolnas} verify --results {params.results} --published {params.published} "
        "--released {input.released} --out {output} --profile {params.profile} 2> {log}"
