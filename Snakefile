# poolnas: from data to every table and figure of the paper. The logic lives in the `poolnas` package;
# these rules only wire its commands together. See README.md ("The workflow") for targets and profiles.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/targets.smk"  # first, so that `figures` is the default target in every mode
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/search.smk"
include: "rules/analysis.smk"
