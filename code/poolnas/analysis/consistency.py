"""Checks that a record belongs where it lies, run by `aggregate` before any CSV is written.

A record's place says what it is: `results/<profile>/runs/train/<dataset>/<backbone>/<config slug>[/<variant>]/
seed<S>.json` or `.../runs/search/<dataset>/<backbone>/<search>/seed<S>.json` (`poolnas.plan`). The tables trust
the record's own fields, so a copy saved under another seed, a record moved to another config's folder, or a
symlink to another run's record would silently give two rows of one run and none of another. Each such record is
refused with one line naming the file, the field, what the record says and what its place says.
"""

from __future__ import annotations

import functools
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


# --- made under the profile's settings? -----------------------------------------------------------------------
# Runs are cached by their record alone, so after a profile edit (a new lr) the old records stay and would be
# mixed with new ones in one table. A record carries the settings it ran with (`hparams`, and in `options` the
# profile's run-wide precision and memory layout); each is compared with what the profile would run for that
# record now (`expected`, the runs' own functions), key by key.

class Stale(UsageError):
    """A record made under other settings than the profile's."""


ABSENT = "(absent)"


def profile_for(results: Path, given: str | settings.Settings | None) -> settings.Settings | None:
    """The profile to compare a results folder's records with: `given` (a name, a .yaml or Settings), else the one
    the folder is named after when the package has it; None (no comparison) for other folders (tests, pilots)."""
    if given is None and Path(results).resolve().name not in settings.available():
        return None
    return settings.resolve(given or Path(results).resolve().name)


@functools.cache
def _defaults() -> dict[str, dict]:
    """{section of `hparams` (a record kind, or a nested key): {key: the schema's default}}: the value of a key an
    older record lacks (it was added to the schema later, with the behaviour before it as its default)."""
    import yaml

    schema = yaml.safe_load(settings.SCHEMA_PATH.read_text())
    props = lambda s: {k: v["default"] for k, v in s["properties"].items() if "default" in v}  # noqa: E731
    ext = schema["properties"]["extensions"]["properties"]
    return {"train": props(schema["$defs"]["protocol"]), "search": props(schema["$defs"]["search"]),
            "network": props(schema["$defs"]["protocol"]), "baseline": props(schema["properties"]["baselines"]),
            "extension": props(ext["dgconv"]) | props(ext["conet"])}


def _flat(d: dict, section: str, defaults: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out |= _flat(value, key, defaults, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out | {prefix + k: v for k, v in defaults.get(section, {}).items() if prefix + k not in out}


def run_hparams(record: dict, prof: settings.Settings) -> dict:
    """The hparams the profile would run the record's run with now, as the run uses them (unrounded)."""
    from poolnas.search.methods import search_hparams

    if record["kind"] == "train":
        return prof.protocol(record["backbone"], record["dataset"])
    return search_hparams(prof, record["method"], record["backbone"], record["dataset"], record.get("models"),
                          record.get("candidates"), record.get("budget_models"))[0]


def expected(record: dict, prof: settings.Settings) -> tuple[dict, dict]:
    """(hparams, options) the profile would run the record's run with now; options: the run-wide keys only."""
    from poolnas.data.datasets import get_dataset
    from poolnas.data.loader import CROP
    from poolnas.records import sig

    options = {"precision": prof.precision}
    if get_dataset(record["dataset"]).recipe == settings.RESIZED:  # the side random resized crops are taken at
        options["crop"] = prof.crop(record["dataset"]) or CROP
    if record["kind"] == "train":
        return run_hparams(record, prof), options
    # search records are rounded (records.sig)
    return sig(run_hparams(record, prof)), options | {"channels_last": prof.channels_last}


def differences(record: dict, prof: settings.Settings, data: PreparedData | None = None) -> list[str]:
    """`key: the record's value, the profile's` for every setting that differs (empty: made under these); `data`:
    the prepared caches that can tell what a record without `data_params` was made on."""
    defaults = _defaults()
    want, want_options = expected(record, prof)
    have = _flat(record.get("hparams") or {}, record["kind"], defaults)
    want = _flat(want, record["kind"], defaults)
    out = [f"{k}: {have.get(k, ABSENT)!r} in the record, {want.get(k, ABSENT)!r} in the profile"
           for k in sorted(set(have) | set(want)) if have.get(k, ABSENT) != want.get(k, ABSENT)]
    options = record.get("options") or {}
    return out + [f"options.{k}: {options.get(k, ABSENT)!r} in the record, {v!r} in the profile"
                  for k, v in want_options.items() if options.get(k, v) != v] + data_differences(record, prof, data)


class PreparedData:
    """The dataset caches under `<data_dir>/cache`, each read once: what a record without `data_params` was made
    on is the cache whose arrays, with the record's own fields, give back its run key (`records.record_key`)."""

    def __init__(self, data_dir: str | Path):
        self.cache_dir, self._metas = Path(data_dir) / "cache", {}

    def params_of(self, record: dict, hparams: dict) -> dict | None:
        """The parameters of the cache `record` was made on, run with `hparams`; None: no cache here fits."""
        from poolnas.data.datasets import prepared_caches
        from poolnas.records import record_key

        name = record["dataset"]
        if name not in self._metas:
            self._metas[name] = prepared_caches(name, self.cache_dir)
        return next((meta["params"] for meta in self._metas[name]
                     if record_key(record, meta["files"], hparams) == record.get("run_key")), None)


def data_differences(record: dict, prof: settings.Settings, data: PreparedData | None = None) -> list[str]:
    """`data.<key>: the record's, the profile's` for each dataset parameter (train subset, image size, seed, ...)
    the record was made with otherwise than the profile prepares its dataset now. A record written before records
    named their `data_params` takes them from the prepared cache its run key points to (`data`); without one, it
    is judged on what its numbers show: the training images of an epoch (a search: its two halves) and the test
    images, against the profile's `train` and `test` (or `holdout`) where it sets them; its other parameters
    (size, classes, seed) cannot be seen in it then (README 'Changed settings')."""
    from poolnas.data.datasets import resolve_params

    want = resolve_params(record["dataset"], prof.dataset_params(record["dataset"]))
    have = record.get("data_params")
    if have is None and data is not None:
        have = data.params_of(record, run_hparams(record, prof))
    if have is None:  # only what both the profile fixes and the record shows
        seen, said = _counts_seen(record), _counts_said(want, record)
        have, want = {k: seen[k] for k in seen.keys() & said}, {k: said[k] for k in seen.keys() & said}
    return [f"data.{k}: {have.get(k, ABSENT)!r} in the record, {want.get(k, ABSENT)!r} in the profile"
            for k in sorted(set(have) | set(want)) if have.get(k, ABSENT) != want.get(k, ABSENT)]


def _counts_seen(record: dict) -> dict:
    """{train, test: the images the record shows it saw}, for those it shows."""
    if record["kind"] == "search":
        seen = {"train": record["search_train"] + record["search_val"] if "search_train" in record else None}
    else:
        seen = {"train": record["history"][0].get("images"), "test": record.get("test_images")}
    return {k: v for k, v in seen.items() if v is not None}


def _counts_said(params: dict, record: dict) -> dict:
    """{train, test: the images a run on these parameters sees}, for those the parameters fix (0: all)."""
    said = {"train": params.get("train") or None, "test": params.get("test") or params.get("holdout")}
    hp = record.get("hparams") or {}
    if record["kind"] == "train" and said["train"] and hp.get("drop_last"):  # an epoch skips the last part-batch
        said["train"] -= said["train"] % hp["batch_size"]
    return {k: v for k, v in said.items() if v is not None}


def check_settings(record: dict, path: Path, prof: settings.Settings | None, data: PreparedData | None = None) -> None:
    """Raise Stale unless `record` was made under the settings `prof` would run it with now (None: no check)."""
    found = differences(record, prof, data) if prof is not None else []
    if found:
        raise Stale(f"record {path}: made under other settings than profile {prof.name}'s ({'; '.join(found)}); "
                    "rerun it (README: 'Changed settings') or delete it")


def stale_records(results: Path, prof: settings.Settings, data_dir: str | Path | None = None
                  ) -> list[tuple[Path, list[str]]]:
    """(path, differences) of every record under results/runs that the profile would now run otherwise, looking
    for the data of records without `data_params` in `data_dir`'s caches; a record that cannot be read is left to
    `aggregate`, which names what is wrong with it."""
    import json

    out, data = [], None if data_dir is None else PreparedData(data_dir)
    for kind in ("train", "search"):
        for path in record_paths(Path(results) / "runs" / kind):
            try:
                found = differences(json.loads(path.read_text()), prof, data)
            except (ValueError, KeyError, TypeError, AttributeError, OSError, UsageError):
                continue
            out += [(path, found)] if found else []
    return out
