"""`python -m poolnas <command>`: every subcommand's arguments, each a thin call into the library.

Bad input never shows a traceback: one line (what was wrong, what is allowed), exit 2. The library is imported
inside each handler, so `poolnas space` does not pay for the training stack, nor `poolnas train` for matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from poolnas import argcheck, plan
from poolnas.errors import UsageError, WriteFailed


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage on error; we print one line and exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_bootstrap(args, minimum: int = 0) -> None:
    if args.bootstrap < minimum:
        raise UsageError(f"--bootstrap must be >= {minimum}, got {args.bootstrap}")
    argcheck.seed(args.seed)


# --- space --------------------------------------------------------------------------------------------------


def _add_space(sub) -> None:
    p = sub.add_parser("space", help="list the configurations of a search space with their cost",
                       description="One row per configuration: index, name, code, parameters and forward "
                                   "multiply-adds (torch's FLOP counter, one MAC = 2 FLOPs).")
    p.add_argument("backbone", help=f"one of: {', '.join(plan.BACKBONES)}")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("--image-size", type=int, default=None, help="input side (default: 32; 224 for --stem imagenet)")
    p.add_argument("--stem", choices=["cifar", "imagenet"], default="cifar", help="ResNet50 only")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--config", action="append", default=None,
                   help="only these configs (any accepted form; repeatable)")
    p.set_defaults(func=_space)


def _space(args) -> int:
    from poolnas.arch.spaces import get_space

    space = get_space(args.backbone)
    if args.classes < 1:
        raise UsageError(f"--classes must be >= 1, got {args.classes}")
    size = (224 if args.stem == "imagenet" else 32) if args.image_size is None else args.image_size  # 0: refused
    if size < 8:
        raise UsageError(f"--image-size must be >= 8 pixels, got {size}")
    configs = [space.parse(c) for c in args.config] if args.config else list(space)
    from poolnas.arch.cost import cost_table  # after validation: importing torch takes a second

    table = cost_table(space.name, configs, image_size=size, classes=args.classes, stem=args.stem)
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False, lineterminator="\n")
    else:
        shown = table.assign(params=table.params.map("{:,}".format), macs=(table.macs / 1e6).map("{:.2f} M".format))
        print(shown.to_string(index=False))
        print(f"\n{len(table)} configs of {space.name} at {size}x{size}; default {space.default.name} "
              f"(#{space.default.index})")
    return 0


# --- data ---------------------------------------------------------------------------------------------------


def _add_data(sub) -> None:
    from poolnas.data.datasets import DATASETS
    from poolnas.data.generated import PARAMS

    p = sub.add_parser("data", help="prepare and inspect cached datasets",
                       description="Convert a dataset once into a checksummed cache of uint8 arrays.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p), required=True)
    prep = actions.add_parser("prepare", help="build the cache of one dataset (no-op when it exists)")
    prep.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    prep.add_argument("--data-root", default=None, help="where the raw files are (or go, with --download)")
    prep.add_argument("--cache-dir", required=True, help="the cache goes in a subdirectory of this")
    prep.add_argument("--download", action="store_true", help="let torchvision download missing files")
    prep.add_argument("--force", action="store_true", help="rebuild even when the cache exists")
    prep.add_argument("--profile", default=None,
                      help="take the dataset's parameters from this profile (smoke, mini, paper or a .yaml)")
    for key in PARAMS:  # generated sets' parameters; seed and train also fashion-mnist's
        defaults = ", ".join(f"{n} {d.generator.defaults[key]}" for n, d in DATASETS.items() if d.generator)
        prep.add_argument(f"--{key}", type=int, default=None, help=f"generated sets (default: {defaults})")
    prep.add_argument("--holdout", type=int, default=None, help="fashion-mnist-holdout: its held-out test split")
    prep.set_defaults(func=_data_prepare)
    info = actions.add_parser("info", help="print the metadata of a prepared dataset")
    info.add_argument("path", help="a cache directory written by `data prepare`")
    info.add_argument("--verify", action="store_true", help="also check every file's sha256")
    info.set_defaults(func=_data_info)


def _data_prepare(args) -> int:
    from poolnas import settings
    from poolnas.data.datasets import prepare
    from poolnas.data.generated import PARAMS

    argcheck.output_dir(args.cache_dir, "--cache-dir")
    if args.data_root and Path(args.data_root).exists():  # a missing one: the dataset's own message says what to put
        argcheck.input_dir(args.data_root, "--data-root")
    params = {}
    if args.profile:  # the workflow's way: one source of truth for the generated set's parameters
        params = settings.resolve(args.profile).dataset_params(args.dataset)
    params |= {k: getattr(args, k) for k in (*PARAMS, "holdout") if getattr(args, k) is not None}
    print(prepare(args.dataset, args.data_root, args.cache_dir, download=args.download, force=args.force, **params))
    return 0


def _data_info(args) -> int:
    from poolnas.data.datasets import load

    data = load(args.path, verify=args.verify)
    meta = data.meta
    print(f"dataset     {meta['dataset']}  ({meta['source']})")
    print(f"path        {data.path}")
    print(f"params      {json.dumps(meta['params'])}")
    print(f"counts      train {meta['counts']['train']}, test {meta['counts']['test']}; "
          f"images {meta['image_size'][0]}x{meta['image_size'][1]} RGB uint8")
    print(f"classes     {len(meta['classes'])}: {', '.join(meta['classes'][:12])}"
          + (", ..." if len(meta["classes"]) > 12 else ""))
    print(f"normalise   mean {meta['mean']} std {meta['std']}; augmentation {meta['recipe']}")
    for file, info in meta["files"].items():
        print(f"file        {file} {info['dtype']} {tuple(info['shape'])} sha256 {info['sha256'][:16]}...")
    print("checksums   " + ("verified" if args.verify else "not checked (use --verify)"))
    return 0


# --- train and search ---------------------------------------------------------------------------------------


def _add_run_arguments(p, *, what: str) -> None:
    """Arguments shared by `train` and `search`: what to run, where data lives, on what device."""
    p.add_argument("--profile", required=True, help="smoke, mini, paper, or a path to a profile .yaml")
    p.add_argument("--dataset", required=True)
    p.add_argument("--backbone", required=True,
                   help="resnet20, resnet18, resnet50, or resnet20-relaxed (train only: a 9-level path)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help=f"the {what} record (JSON), written atomically at the end")
    p.add_argument("--data-dir", default="data", help="raw files under DATA_DIR/raw, caches under DATA_DIR/cache")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file (default: .checkpoints/ beside --out); a run resumes from it")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the profile's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the profile's)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one configuration standalone and write its record",
                       description="Standalone training of one configuration: ground truth and retraining.")
    _add_run_arguments(p, what="training")
    p.add_argument("--config", required=True, help='e.g. "[4,3,3]", 4-3-3, 24 or 0000100100')
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epoch count")
    p.add_argument("--variant", default=None, help="learned groups g<hex> or widths w<n>-<n>-... (arch.variants)")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from poolnas.engine.loop import TrainingDiverged
    from poolnas.standalone import train_run

    checkpoint = argcheck.run_arguments(args)
    try:
        record = train_run(profile=args.profile, dataset=args.dataset, backbone=args.backbone, config=args.config,
                           seed=args.seed, out=args.out, data_dir=args.data_dir, checkpoint=checkpoint,
                           device=args.device, threads=args.threads, epochs=args.epochs, variant=args.variant)
    except TrainingDiverged as err:
        return log(f"poolnas train: error: {err}") or 1
    log(f"{record['config']} seed {record['seed']}: test accuracy {record['test_acc']:.2f}% -> {args.out}")
    return 0


def _add_search(sub) -> None:
    p = sub.add_parser("search", help="search pooling configs (mixtures, random, baselines), or groups and widths",
                       description="One search over a backbone's pooling configs; the record names the pick.")
    _add_run_arguments(p, what="search")
    p.add_argument("--method", default="mixture", help=f"one of: {', '.join(plan.SEARCH_METHODS)} (default mixture)")
    p.add_argument("--models", type=int, default=None, help="M, the number of SuperNets (mixture)")
    p.add_argument("--configs", type=int, default=None, help="K, configs random search trains (default: the profile's)")
    p.add_argument("--budget-models", type=int, default=None, help="B: at the budget of B SuperNets (mixture-budget)")
    p.add_argument("--checkpoint-dir", default=None, help="put the checkpoint in DIR/<out name>.pt (not --checkpoint)")
    p.add_argument("--pooling", default=None, help="dgconv, conet: the config searched (any form, default or best)")
    p.add_argument("--rho", type=int, default=None, help="dgconv: the budget, percent of the dense connections")
    p.add_argument("--groundtruth", nargs="+", default=None, help="--pooling best: the ground-truth records")
    p.set_defaults(func=_search)


def _search(args) -> int:
    from poolnas.engine.loop import TrainingDiverged
    from poolnas.search.balancing import BalancingError
    from poolnas.search.run import search_run

    checkpoint = argcheck.run_arguments(args)
    try:
        record = search_run(method=args.method, profile=args.profile, dataset=args.dataset, backbone=args.backbone,
                            seed=args.seed, out=args.out, models=args.models, configs=args.configs,
                            budget_models=args.budget_models, pooling=args.pooling, rho=args.rho,
                            groundtruth=args.groundtruth, data_dir=args.data_dir, checkpoint=checkpoint,
                            device=args.device, threads=args.threads)
    except (TrainingDiverged, BalancingError) as err:
        log(f"poolnas search: error: {err}")
        return 1
    sel = record["selected"]
    log(f"search {record['method']} seed {record['seed']}: selected {sel['config']} (#{sel['index']}, "
        f"rule {sel['rule']}) -> {args.out}")
    return 0


# --- the released data --------------------------------------------------------------------------------------


def _add_bootstrap(p, *, level: bool = False) -> None:
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    if level:
        p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")


def _add_rank(sub) -> None:
    p = sub.add_parser("rank", help="rank correlation of SuperNet scores with the ground truth, per M",
                       description="Read a per-configuration table in the authors' released format and print, "
                                   "for each number of SuperNets M: Kendall tau-b, Spearman, top-1/3/5 overlap, "
                                   "regret of the pick (accuracy points), percentile bootstrap intervals over "
                                   "configs (0 resamples leaves them out), and the config the SuperNet scores "
                                   "would pick.")
    p.add_argument("path", nargs="?", default=plan.RELEASED,
                   help=f"CSV with architecture, baseline_avg, baseline_stdev, M<m>_avg, M<m>_stdev (default "
                        f"{plan.RELEASED})")
    p.add_argument("--format", choices=["csv", "table"], default="csv")
    _add_bootstrap(p, level=True)
    p.set_defaults(func=_rank)


def _rank(args) -> int:
    from poolnas.analysis.released import rank_released, read_released

    _check_bootstrap(args)
    if not 0 < args.level < 1:
        raise UsageError(f"--level must be between 0 and 1, got {args.level}")
    table = rank_released(read_released(args.path), n_boot=args.bootstrap, seed=args.seed, level=args.level)
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False, lineterminator="\n", float_format="%.6g")
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        note = f"; {args.level:.0%} percentile intervals over {args.bootstrap} config resamples (seed {args.seed})"
        print("\nKendall tau-b and Spearman of SuperNet score vs ground truth; regret in accuracy points"
              + (note if args.bootstrap else ""))
    return 0


def _add_verify_released(sub) -> None:
    p = sub.add_parser("verify-released", help="check the published numbers against the released per-config data",
                       description="Compare, claim by claim, the paper's published numbers with what the authors' "
                                   "released per-configuration ResNet20 table implies; write a Markdown section.")
    p.add_argument("path", nargs="?", default=plan.RELEASED,
                   help=f"the released per-configuration CSV (default {plan.RELEASED})")
    p.add_argument("--published", default=plan.PUBLISHED, help="folder of published-number CSVs")
    p.add_argument("--out", default=None, help="Markdown file to write (atomically); stdout when omitted")
    _add_bootstrap(p)
    p.set_defaults(func=_verify_released)


def _verify_released(args) -> int:
    from poolnas.analysis.released import read_released
    from poolnas.analysis.verify_released import read_published, render_markdown, verify
    from poolnas.records import atomic_write_text

    _check_bootstrap(args)
    argcheck.output_file(args.out, "--out")
    tidy, pub = read_released(args.path), read_published(args.published)
    text = render_markdown(verify(tidy, pub, args.bootstrap, args.seed), Path(args.path), args.bootstrap, args.seed)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        print(text, end="")
    return 0


# --- analysis of our results --------------------------------------------------------------------------------


def _add_results_arguments(p, *, out: str, out_required: bool) -> None:
    """--results, --published and --out of the commands that read aggregated results."""
    p.add_argument("--results", required=True, help="results/<profile> (after `poolnas aggregate`)")
    p.add_argument("--published", default=plan.PUBLISHED, help="folder of published-number CSVs")
    p.add_argument("--out", required=out_required, default=None, help=out)
    p.add_argument("--profile", default=None, help="whose `stands_for` keys say which study stands for which of the "
                   "paper's (a name or .yaml; default: the profile the records name)")
    p.add_argument("--dataset", default=None, help="dataset of the ResNet20 study (Tables 1-2, figures; default: the "
                   "one standing for cifar10, else cifar10 if present, else the first)")


def _add_aggregate(sub) -> None:
    p = sub.add_parser("aggregate", help="collect the run records of a results folder into tidy CSVs",
                       description="Every per-run JSON record under results/<profile>/runs/ into tidy CSVs beside it.")
    p.add_argument("--results", required=True, help="results/<profile> (holds runs/)")
    p.add_argument("--profile", help="refuse records made under other settings (default: the folder's profile)")
    p.add_argument("--data-dir", default="data", help="whose prepared caches tell what data older records used")
    _add_bootstrap(p)
    p.set_defaults(func=_aggregate)


def _aggregate(args) -> int:
    from poolnas.analysis.aggregate import collect, write

    _check_bootstrap(args)
    argcheck.output_dir(argcheck.results_dir(args.results), "--results")  # the CSVs go beside runs/
    frames = collect(args.results, n_boot=args.bootstrap, seed=args.seed, profile=args.profile, data_dir=args.data_dir)
    for path, frame in zip(write(args.results, frames), frames.values()):
        print(f"{path}: {len(frame)} rows")
    return 0


def _add_tables(sub) -> None:
    p = sub.add_parser("tables", help="the paper's Tables 1-4 with our numbers beside the published ones",
                       description="Tables 1-4 as CSV, LaTeX and Markdown, ours beside the published numbers.")
    _add_results_arguments(p, out="folder for table<N>.csv/.tex/.md", out_required=True)
    p.add_argument("--only", action="append", choices=plan.TABLE_NAMES, default=None, help="only this one (repeatable)")
    p.set_defaults(func=_tables)


def _tables(args) -> int:
    from poolnas.analysis.tables import write_tables

    argcheck.output_dir(args.out, "--out")
    for path in write_tables(args.results, args.published, args.out, args.only, args.dataset, args.profile):
        print(path)
    return 0


def _add_figures(sub) -> None:
    p = sub.add_parser("figures", help="draw the figures (PDF and PNG) from aggregated results",
                       description="The paper's figures and ours, as PDF and PNG, from the aggregated CSVs.")
    _add_results_arguments(p, out="folder for <figure>.pdf and .png, e.g. figures/<profile>", out_required=True)
    p.add_argument("--only", action="append", choices=plan.FIGURE_NAMES, default=None,
                   help="draw only this figure (repeatable)")
    p.set_defaults(func=_figures)


def _figures(args) -> int:
    from poolnas.analysis.figures import make_figures

    results = argcheck.results_dir(args.results)
    argcheck.output_dir(args.out, "--out")
    for name, result in make_figures(results, args.out, args.only, args.published, args.dataset, args.profile).items():
        print(f"{name}: " + (", ".join(map(str, result)) if isinstance(result, list) else f"skipped ({result})"))
    return 0


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check the paper's numbers and claims on our results; write a Markdown report",
                       description="Claim by claim, the paper's numbers against our results, as Markdown.")
    _add_results_arguments(p, out="Markdown report to write (atomically); stdout when omitted", out_required=False)
    p.add_argument("--released", default=plan.RELEASED,
                   help=f"the authors' released per-config CSV, for the released-data section (default "
                        f"{plan.RELEASED}; '' leaves the section out)")
    _add_bootstrap(p)
    p.set_defaults(func=_verify)


def _verify(args) -> int:
    from poolnas.analysis.verify import write_report

    _check_bootstrap(args, minimum=1)
    argcheck.output_file(args.out, "--out")
    text = write_report(args.results, args.published, args.out, args.released, args.bootstrap, args.seed, args.dataset,
                        args.profile)
    print(args.out if args.out else text, end="\n" if args.out else "")
    return 0


COMMANDS = {"space": _add_space, "data": _add_data, "train": _add_train, "search": _add_search,
            "rank": _add_rank, "verify-released": _add_verify_released, "aggregate": _add_aggregate,
            "tables": _add_tables, "figures": _add_figures, "verify": _add_verify}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="poolnas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, add in COMMANDS.items():
        if only is None or only not in COMMANDS or name == only:
            add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, WriteFailed) as err:  # bad input, exit 2; a full disk (which file; a run resumes), exit 1
        full = isinstance(err, WriteFailed)
        again = WriteFailed.NEXT.get(args.command, "") if full else ""
        sys.stderr.write(f"poolnas {args.command}: error: {err}{again}\n")
        return 1 if full else 2
    except KeyboardInterrupt:
        sys.stderr.write("poolnas: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
