# Named targets: `snakemake --cores 8 <target>`; `figures` is the default target.


rule figures:
    input:
        LAYOUT.table_files(),
        LAYOUT.figure_files(FIGURE_NAMES),
        LAYOUT.verification,
    default_target: True


rule all:
    input:
        rules.figures.input,


rule tables:
    input:
        LAYOUT.table_files(),


rule verify:
    input:
        LAYOUT.verification,


rule data:
    input:
        sorted({prepared_stamp(s["dataset"]) for s in PROFILE.studies}),


rule groundtruth:
    input:
        groundtruth_records(),


rule search:
    input:
        search_records(),


rule retrain:
    input:
        retrain_records,


for _name in TABLE_NAMES:

    rule:
        name:
            _name
        input:
            LAYOUT.table_files(_name),


for _name in plan.FIGURE_NAMES:

    rule:
        name:
            _name
        input:
            LAYOUT.figure_files(_name),
