# Prepare each dataset once into a checksummed uint8 cache (poolnas.data.datasets).


rule prepare_data:
    message:
        "prepare dataset {wildcards.dataset} (log: {log})"
    output:
        prepared_stamp("{dataset}"),
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    params:
        poolnas=POOLNAS,
        profile=PROFILE_ARG,
        data=lambda w, output: data_dir_of(output[0]),
    localrule: True
    conda:
        "../environment.yml"
    shell:
        "{params.poolnas} data prepare --profile {params.profile} --dataset {wildcards.dataset} "
        "--data-root {params.data}/raw --cache-dir {params.data}/cache > {output} 2> {log}"

