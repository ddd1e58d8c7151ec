"""The record formats, written down once as JSON Schema (train.json, search.json beside this file), and the check
every writer and reader of a record runs.

`check(record, kind, where)` validates a record with jsonschema (required fields, types, ranges: accuracies are
finite and in [0, 100]; "number" here excludes NaN and infinity, which Python's json module would otherwise read
from `NaN` and `Infinity`), then checks what a schema cannot: every config name exists in the backbone's space,
the index beside it is that config's, and per-config lists have one entry per searched config. A bad record raises
`UsageError` with one line naming the file and the field. `write_record` checks before the atomic write (so a bad
record is never written), `read_record` after reading.
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from poolnas.arch.spaces import RELAXED, get_space
from poolnas.errors import UsageError
from poolnas.records import write_json

HERE = Path(__file__).resolve().parent
KINDS = ("train", "search")


def schema_path(kind: str) -> Path:
    return HERE / f"{kind}.json"


def _finite_number(checker, instance) -> bool:
    return (isinstance(instance, (int, float)) and not isinstance(instance, bool)
            and (isinstance(instance, int) or math.isfinite(instance)))


_Base = jsonschema.Draft202012Validator
_Validator = jsonschema.validators.extend(
    _Base, type_checker=_Base.TYPE_CHECKER.redefine("number", _finite_number))


@lru_cache(maxsize=None)
def validator(kind: str):
    if kind not in KINDS:
        raise ValueError(f"no schema for record kind {kind!r}; known: {', '.join(KINDS)}")
    schema = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    _Base.check_schema(schema)
    return _Validator(schema)


class BadRecord(UsageError):
    """A record that does not match its schema: the message names the file and the field."""


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the record itself)"


def _short(value: Any) -> str:
    text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(record: Any, kind: str, where: str | os.PathLike) -> None:
    """Raise BadRecord (one line: `where`, the field, what is wrong) unless `record` is a valid `kind` record."""
    error = best_match(validator(kind).iter_errors(record))
    if error is not None:
        problem, field = error.message, list(error.absolute_path)
        if error.validator == "type" and isinstance(error.instance, float) and not math.isfinite(error.instance):
            problem = f"{error.instance} is not a finite number"
        elif error.validator == "required":  # name the missing field itself
            missing = next(k for k in error.validator_value if k not in error.instance)
            problem, field = "missing (a required field)", field + [missing]
        elif len(problem) > 160:
            problem = f"{_short(error.instance)} is not valid here ({error.validator} {_short(error.validator_value)})"
        raise BadRecord(f"record {where}: field {_field(field)}: {problem}")
    for field, problem in (_train_problems if kind == "train" else _search_problems)(record):
        raise BadRecord(f"record {where}: field {field}: {problem}")


def _config_problem(space, name, index) -> str | None:
    """Why (name, index) is not one config of `space` (None when it is)."""
    try:
        config = space.parse(name)
    except UsageError as err:
        return f"{name!r} is not a config of {space.name} ({err})"
    if config.name != name:
        return f"{name!r} is not written as a config name ({config.name})"
    if index is not None and index != config.index:
        return f"index {index} is not the index of {name} in {space.name} ({config.index})"
    return None


def _train_problems(r: dict):
    if r["backbone"] == RELAXED.name:
        try:
            path = RELAXED.parse(r["config"])
        except UsageError as err:
            yield "config", f"{r['config']!r} is not a path of {RELAXED.name} ({err})"
            return
        if RELAXED.name_of(path) != r["config"]:
            yield "config", f"{r['config']!r} is not written as a path ({RELAXED.name_of(path)})"
        elif r["index"] != RELAXED.index(path):
            yield "index", f"index {r['index']} is not the index of path {r['config']} ({RELAXED.index(path)})"
        elif r["code"] != r["config"]:
            yield "code", f"{r['code']!r} is not the path {r['config']}"
        return
    space = get_space(r["backbone"])
    problem = _config_problem(space, r["config"], r["index"])
    if problem:
        yield ("index" if problem.startswith("index") else "config"), problem
    elif space.parse(r["config"]).code != r["code"]:
        yield "code", f"{r['code']!r} is not the code of {r['config']} ({space.parse(r['config']).code})"
    if r.get("variant") is not None:
        from poolnas.arch import variants  # torch: only for the records that need it

        try:
            described = variants.parse(r["backbone"], r["variant"]["slug"]).describe()
        except UsageError as err:
            yield "variant.slug", str(err)
            return
        if described != r["variant"]:
            yield "variant", f"does not describe its slug {r['variant']['slug']} ({_short(described)})"


def _search_problems(r: dict):
    space = get_space(r["backbone"])

    def pick(field: str, entry: dict):
        if entry.get("config") is not None:
            problem = _config_problem(space, entry["config"], entry.get("index"))
            if problem:
                yield f"{field}.{'index' if problem.startswith('index') else 'config'}", problem
        elif entry.get("index") is not None:
            yield f"{field}.index", f"index {entry['index']} without a config"
        elif entry.get("path") is None:
            yield f"{field}.config", "neither a config nor a path"
        path = entry.get("path")
        if path is not None and entry.get("config") is not None and r["backbone"] == RELAXED.base:
            as_config = RELAXED.to_config(RELAXED.parse(path))
            if as_config is not None and as_config.name != entry["config"]:
                yield f"{field}.path", f"path {path} is config {as_config.name}, not {entry['config']}"

    yield from pick("selected", r["selected"])
    for rule, alt in (r.get("alternatives") or {}).items():
        yield from pick(f"alternatives.{rule}", alt)
    configs = r.get("configs")
    for i, name in enumerate(configs or []):
        problem = _config_problem(space, name, None)
        if problem:
            yield f"configs[{i}]", problem
    for i, run in enumerate(r.get("candidate_runs") or []):
        yield from pick(f"candidate_runs[{i}]", run)
    if configs is not None and r.get("accuracy") is not None and len(r["accuracy"]) != len(configs):
        yield "accuracy", f"{len(r['accuracy'])} entries for {len(configs)} configs"
    if r["method"] in ("mixture", "mixture-budget", "mixture-pair"):
        M = r["models"]
        for field in ("accuracy", "P_final", "W", "counts", "assignment"):
            value = r[field]
            if len(value) != len(configs):
                yield field, f"{len(value)} rows for {len(configs)} configs"
            elif field != "assignment" and any(not isinstance(row, list) or len(row) != M for row in value):
                yield field, f"a row without {M} entries (one per SuperNet, models = {M})"
        if any(not 0 <= m < M for m in r["assignment"]):
            yield "assignment", f"a SuperNet outside 0..{M - 1}"
    if r["method"] in ("dgconv", "conet"):
        yield from _variant_problems(r)
    if r["method"] == "random" and len(r["candidate_runs"]) != r["candidates"]:
        yield "candidate_runs", f"{len(r['candidate_runs'])} runs for candidates = {r['candidates']}"


def _variant_problems(r: dict):
    """dgconv and conet: every architecture they name exists in the backbone, and their pick is what they found."""
    from poolnas.arch import variants  # torch: only for the records that need it

    slugs = [("selected.variant", r["selected"]["variant"])] + [(f"compare.{k}.variant", v["variant"])
                                                                for k, v in r["compare"].items()]
    for field, slug in slugs:
        try:
            variants.parse(r["backbone"], slug)
        except UsageError as err:
            yield field, str(err)
    if r["found"]["variant"]["slug"] != r["selected"]["variant"]:
        yield "found.variant.slug", (f"{r['found']['variant']['slug']} is not selected.variant "
                                     f"{r['selected']['variant']}")
    if r["pooling"]["config"] != r["selected"]["config"]:
        yield "pooling.config", f"{r['pooling']['config']} is not selected.config {r['selected']['config']}"


def write_record(path: str | os.PathLike, record: dict) -> None:
    """Check a record against the schema of its kind, then write it atomically (a bad one is never written)."""
    check(record, record.get("kind") if record.get("kind") in KINDS else "train", f"{path} (not written)")
    write_json(path, record)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json's object hook: a key given twice is an error, not "the last one wins"."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_record(path: str | os.PathLike, kind: str) -> dict:
    """Read and check one record of `kind`; a missing, unreadable or bad one is one line naming file and field."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRecord(f"cannot read record {path}: {err}") from None
    except _DuplicateKey as err:
        raise BadRecord(f"record {path}: field {err.args[0]}: given twice in one JSON object (json keeps the last "
                        "value silently); each field once") from None
    if isinstance(record, dict) and record.get("kind") not in (kind, None):
        raise BadRecord(f"{path}: kind is {record.get('kind')!r}, expected {kind!r} under runs/{kind}/")
    check(record, kind, path)
    return record
