"""`python -m poolnas <command>`: one entry point; each module registers its own subcommands.

Bad input never shows a traceback: it prints one line (what was wrong, what is allowed) and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from poolnas.errors import UsageError

# Modules that contribute subcommands, each with `register(subparsers)`; imported lazily so that
# `poolnas space` does not pay for importing the training stack.
COMMAND_MODULES = {
    "space": "poolnas.spaces",
    "data": "poolnas.datasets",
    "train": "poolnas.train",
    "search": "poolnas.search",
    "rank": "poolnas.released",
    "verify-released": "poolnas.verify_released",
    "aggregate": "poolnas.aggregate",
    "tables": "poolnas.tables",
    "figures": "poolnas.figures",
    "verify": "poolnas.verify",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage on error; we print one line and exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="poolnas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    modules = sorted(set(COMMAND_MODULES.values()))
    if only in COMMAND_MODULES:  # import just the module that owns the command being run
        modules = [COMMAND_MODULES[only]]
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        sys.stderr.write(f"poolnas {args.command}: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("poolnas: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
