# SuperNet searches (mixture-M<models>), random search at equal cost (random-K<configs>), the baselines, and the
# searches beyond the pooling (dgconv-R<rho>-<pooling>, conet-<pooling>; issue 17) (poolnas.search.run).
# A checkpoint: which configs (and groups, widths) get retrained is known only once a search has picked them.


checkpoint search_run:
    message:
        "search {wildcards.search} on {wildcards.dataset}/{wildcards.backbone} seed {wildcards.seed} (log: {log})"
    input:
        prepared,
        groundtruth=groundtruth_of,  # `best` pooling only: the ground truth it picks from
    output:
        record=SEARCH_RECORD,
    log:
        f"{LOGS}/search/{{dataset}}/{{backbone}}/{{search}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/search/{{dataset}}/{{backbone}}/{{search}}/seed{{seed}}.tsv"
    wildcard_constraints:
        search=plan.SEARCH_SLUG,
        seed=r"\d+",
    params:
        poolnas=POOLNAS,
        data=lambda w, input: data_dir_of(input[0]),
        profile=PROFILE_ARG,
        method=lambda w: plan.search_arguments(w.search),
        groundtruth=lambda w, input: f"--groundtruth {' '.join(input.groundtruth)}" if input.groundtruth else "",
        checkpoint=lambda w: f"{CKPT}/search/{w.dataset}/{w.backbone}/{w.search}/seed{w.seed}.pt",
    threads: PROFILE.threads
    resources:
        gpu=gpus_per_job,
        mem_mb=lambda w: 6000 if w.backbone == "resnet20" else 24000,
        runtime=search_runtime,
        attempt=attempt,  # the header line of the log (LOG_HEAD)
    conda:
        "../environment.yml"
    shell:
        logged(
            "{params.poolnas} search {params.method} {params.groundtruth} --profile {params.profile} "
            "--dataset {wildcards.dataset} --backbone {wildcards.backbone} --seed {wildcards.seed} "
            "--out {output.record} --data-dir {params.data} --checkpoint {params.checkpoint} --threads {threads} 2>> {log}"
        )
