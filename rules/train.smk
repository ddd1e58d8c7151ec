# Standalone training of one config with one seed: ground truth and retraining (poolnas.standalone).


rule train:
    message:
        "train {wildcards.dataset}/{wildcards.backbone} {wildcards.config} seed {wildcards.seed} (log: {log})"
    input:
        prepared,
    output:
        record=TRAIN_RECORD,
    log:
        f"{LOGS}/train/{{dataset}}/{{backbone}}/{{config}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{backbone}}/{{config}}/seed{{seed}}.tsv"
    wildcard_constraints:
        config=plan.CONFIG_SLUG,
        seed=r"\d+",
    params:
        poolnas=POOLNAS,
        data=lambda w, input: data_dir_of(input[0]),
        profile=PROFILE_ARG,
        checkpoint=lambda w: f"{CKPT}/train/{w.dataset}/{w.backbone}/{w.config}/seed{w.seed}.pt",
    threads: PROFILE.threads
    resources:
        gpu=gpus_per_job,
        mem_mb=lambda w: 4000 if w.backbone.startswith("resnet20") else 16000,  # resnet20 and resnet20-relaxed
        runtime=train_runtime,
        attempt=attempt,  # the header line of the log (LOG_HEAD)
    conda:
        "../environment.yml"
    shell:
        logged(
            "{params.poolnas} train --profile {params.profile} --dataset {wildcards.dataset} --backbone {wildcards.backbone} "
            "--config {wildcards.config} --seed {wildcards.seed} --out {output.record} --data-dir {params.data} "
            "--checkpoint {params.checkpoint} --threads {threads} 2>> {log}"
        )


# Issue 17: a config with the groups or widths a search found, or a comparison architecture (poolnas.arch.variants).
rule train_variant:
    message:
        "train {wildcards.dataset}/{wildcards.backbone} {wildcards.config} {wildcards.variant} seed {wildcards.seed} "
        "(log: {log})"
    input:
        prepared,
    output:
        record=VARIANT_RECORD,
    log:
        f"{LOGS}/train/{{dataset}}/{{backbone}}/{{config}}/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{dataset}}/{{backbone}}/{{config}}/{{variant}}/seed{{seed}}.tsv"
    wildcard_constraints:
        config=plan.CONFIG_SLUG,
        variant=plan.VARIANT_SLUG,
        seed=r"\d+",
    params:
        poolnas=POOLNAS,
        data=lambda w, input: data_dir_of(input[0]),
        profile=PROFILE_ARG,
        checkpoint=lambda w: f"{CKPT}/train/{w.dataset}/{w.backbone}/{w.config}/{w.variant}/seed{w.seed}.pt",
    threads: PROFILE.threads
    resources:
        gpu=gpus_per_job,
        mem_mb=lambda w: 4000 if w.backbone.startswith("resnet20") else 16000,
        runtime=train_runtime,
        attempt=attempt,  # the header line of the log (LOG_HEAD)
    conda:
        "../environment.yml"
    shell:
        logged(
            "{params.poolnas} train --profile {params.profile} --dataset {wildcards.dataset} "
            "--backbone {wildcards.backbone} --config {wildcards.config} --variant {wildcards.variant} --seed {wildcards.seed} --out {output.record} "
            "--data-dir {params.data} --checkpoint {params.checkpoint} --threads {threads} 2>> {log}"
        )
