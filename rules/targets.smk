# Named targets: `snakemake --cores 8 <target>`; `figures` is the default target.


rule figures:
    input:
        table_files(TABLE_NAMES),
        figure_files(FIGURE_NAMES),
        f"paper/verification/{P}.md",
    default_target: True


rule all:
    input:
        rules.figures.input,


rule tables:
    input:
        table_files(TABLE_NAMES),


rule verify:
    input:
        f"paper/verification/{P}.md",


rule data:
    input:
        sorted({prepared_stamp(s["dataset"]) for s in PROFILE["studies"]}),


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
            table_files(_name),


for _name in sorted(set(FIGURE_NAMES) | {"figure4"}):

    rule:
        name:
            _name
        input:
            figure_files(_name),
