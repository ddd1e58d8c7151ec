"""Checks that a record belongs where it lies, run by `aggregate` before any CSV is written.

A record's place says what it is: `results/<profile>/runs/train/<dataset>/<backbone>/<config slug>[/<variant>]/
seed<S>.json` or `.../runs/search/<dataset>/<backbone>/<search>/seed<S>.json` (`poolnas.plan`). The tables trust
the record's own fields, so a copy saved under another seed, a record moved to another config's folder, or a
symlink to another run's record would silently give two rows of one run and none of another. Each such record is
refused with one line naming the file, the field, what the record says and what its place says.
"""

from __future__ import annotations

from pathlib import Path

from poolnas import settings
from poolnas.errors import UsageError


class Misplaced(UsageError):
    """A record whose fields disagree with its path."""


def record_paths(root: Path) -> list[Path]:
    """Every `seed*.json` under `root` (runs/<kind>), in path order; a file or folder whose name starts with a dot
    is skipped (editor and temporary files), judged only on the part under `root`: a results folder inside a
    hidden directory (~/.cache/...) is read in full."""
    return sorted(p for p in root.rglob("seed*.json")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def _place(record: dict, kind: str) -> list[tuple[str, str]]:
    """(field, value) pairs the path of `record` must show, top folder first, then the file name."""
    from poolnas.arch.spaces import RELAXED, get_space
    from poolnas.plan import record_search_name as search_name

    where = [("dataset", record["dataset"]), ("backbone", record["backbone"])]
    if kind == "search":
        where.append(("method", search_name(record)))
    else:
        config = record["config"] if record["backbone"] == RELAXED.name else get_space(record["backbone"]).parse(
            record["config"]).slug
        where.append(("config", config))
        if record.get("variant"):
            where.append(("variant", record["variant"]["slug"]))
    return where + [("seed", f"seed{record['seed']}.json")]


def check_place(record: dict, path: Path, root: Path, profile: str) -> None:
    """Raise Misplaced unless `record`, read from `path` under `root` (= results/<profile>/runs/<kind>), is the
    record of that place and of `profile` (the results folder's name)."""
    if path.is_symlink():
        raise Misplaced(f"record {path}: is a symbolic link (to {path.resolve()}); a record is a file of its own "
                        "(copy it, or delete the link)")
    # a known profile's records live in its own folder and nowhere else; other folders (tests, pilots) name none
    known = settings.available()
    if record.get("profile") != profile and (profile in known or record.get("profile") in known):
        raise Misplaced(f"record {path}: field profile: {record.get('profile')!r}, but it lies in the results of "
                        f"profile {profile!r}")
    parts = path.relative_to(root).parts
    expected = _place(record, root.name)
    if len(parts) != len(expected):
        raise Misplaced(f"record {path}: its place is {'/'.join(v for _, v in expected)} under {root}, not "
                        f"{'/'.join(parts)}")
    for (field, value), part in zip(expected, parts):
        if part != value:
            said = {"method": "search (from method, models, candidates, budget)", "seed": "seed"}.get(field, field)
            raise Misplaced(f"record {path}: field {said}: the record says {value!r}, its path {part!r}")
