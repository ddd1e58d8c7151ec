# Named targets: `snakemake --cores 8 <target>`; `figures` is the default target.


rule figures:
    message:
        f"target figures ({P}): done"
    input:
        LAYOUT.table_files(TABLE_NAMES),
        LAYOUT.figure_files(FIGURE_NAMES),
        LAYOUT.verification,
    default_target: True


rule all:
    message:
        f"target all ({P}): done"
    input:
        rules.figures.input,
        groundtruth_records(),  # and every run of an in-progress study, which the tables read as far as it goes
        search_records(),
        retrain_records,
        extension_retrain_records,


rule tables:
    message:
        f"target tables ({P}): done"
    input:
        LAYOUT.table_files(TABLE_NAMES),


rule verify:
    message:
        f"target verify ({P}): done"
    input:
        LAYOUT.verification,


rule data:
    message:
        f"target data ({P}): done"
    input:
        sorted({prepared_stamp(s["dataset"]) for s in PROFILE.studies}),


rule groundtruth:
    message:
        f"target groundtruth ({P}): done"
    input:
        groundtruth_records(),


rule search:
    message:
        f"target search ({P}): done"
    input:
        search_records(),


rule retrain:
    message:
        f"target retrain ({P}): done"
    input:
        retrain_records,
        extension_retrain_records,


for _name in plan.TABLE_NAMES:

    rule:
        name:
            _name
        message:
            f"target {_name} ({P}): done"
        input:
            LAYOUT.table_files(_name),


for _name in plan.FIGURE_NAMES:

    rule:
        name:
            _name
        message:
            f"target {_name} ({P}): done"
        input:
            LAYOUT.figure_files(_name),
