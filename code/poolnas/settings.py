"""Settings: one YAML profile per scale (smoke, mini, gpu1, paper), validated against one schema, resolved once.

The same files drive the package's commands (`--profile mini`) and the Snakemake workflow
(`--config profile=mini`), so a hyperparameter lives in exactly one visible place. A profile may also be given
as a path to a YAML file of one's own (a new dataset, a cluster-sized variant), or as a dict (tests); all three
are validated the same way. `resolve` turns any of them into a frozen `Settings`, which is what the layers
above receive: the run-wide fields typed, the hyperparameter sections handed out as fresh dicts (they are
recorded verbatim in every record and hashed into its run key).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from poolnas.errors import UsageError
from poolnas.arch.spaces import RELAXED, Config, get_space

PROFILE_DIR = Path(__file__).with_name("profiles")
SCHEMA_PATH = PROFILE_DIR / "schema.yaml"


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.stem != "schema")


def profile_path(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise UsageError(f"profile file {name} does not exist")
        return candidate
    path = PROFILE_DIR / f"{name}.yaml"
    if name == "schema" or not path.is_file():
        raise UsageError(f"unknown profile {name!r}; known: {', '.join(available())} (or a path to a .yaml file)")
    return path


def _fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Insert the schema's `default` values (jsonschema validates but does not fill)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(instance, dict):
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for item in instance:
                _fill_defaults(item, schema["items"], root)
        return
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub and key not in instance:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def validate(profile: dict, source: str = "profile") -> dict:
    """Check a profile against the schema and the search spaces; return it with defaults filled in."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    try:
        jsonschema.validate(profile, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.absolute_path)) or "(top level)"
        raise UsageError(f"{source}: {where}: {err.message}") from None
    profile = copy.deepcopy(profile)
    _fill_defaults(profile, schema, schema)
    for study in profile["studies"]:
        where = f"{source}: study {study['dataset']}/{study['backbone']}"
        if study["dataset"] not in profile["datasets"]:
            raise UsageError(f"{where}: dataset {study['dataset']!r} is not listed under datasets "
                             f"({', '.join(profile['datasets'])})")
        for section, key in [("protocols", study["backbone"]), ("search", study["backbone"])]:
            if key not in profile[section]:
                raise UsageError(f"{where}: no {section} entry for {key}")
        try:
            groundtruth_configs(study)
            extension_configs(study)
            for models in study["search"].get("mixture", []):
                if models > len(get_space(study["backbone"])):
                    raise UsageError(f"mixture of {models} SuperNets exceeds the {len(get_space(study['backbone']))} "
                                     f"configs of {study['backbone']}")
        except UsageError as err:
            raise UsageError(f"{where}: {err}") from None
    return profile


@lru_cache(maxsize=None)
def _load_cached(path: str) -> dict:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"profile {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return validate(raw if isinstance(raw, dict) else {}, source=f"profile {Path(path).name}")


def load(name: str) -> dict:
    """The validated profile (a fresh copy: callers may modify it)."""
    return copy.deepcopy(_load_cached(str(profile_path(name).resolve())))


def _entry(profile: dict, section: str, backbone: str, dataset: str) -> dict:
    table = profile[section]
    entry = table.get(f"{backbone}@{dataset}", table.get(backbone))
    if entry is None:
        raise UsageError(f"profile {profile['profile']} has no {section} entry for {backbone} "
                         f"(has: {', '.join(table)})")
    return copy.deepcopy(entry)


def protocol(profile: dict, backbone: str, dataset: str) -> dict:
    """Standalone-training hyperparameters for a backbone on a dataset."""
    return _entry(profile, "protocols", backbone, dataset)


def search_settings(profile: dict, backbone: str, dataset: str) -> dict:
    """SuperNet-search hyperparameters for a backbone on a dataset."""
    return _entry(profile, "search", backbone, dataset)


def dataset_params(profile: dict, dataset: str) -> dict:
    if dataset not in profile["datasets"]:
        raise UsageError(f"dataset {dataset!r} is not in profile {profile['profile']} "
                         f"(has: {', '.join(profile['datasets'])})")
    return dict(profile["datasets"][dataset])


def groundtruth_configs(study: dict) -> list[Config]:
    """The configs a study trains standalone: 'all', or a list of anything Space.parse reads ('default' too)."""
    space = get_space(study["backbone"])
    wanted = study["groundtruth"]["configs"]
    if wanted == "all":
        return list(space)
    return [space.default if str(c) == "default" else space.parse(c) for c in wanted]


def extension_configs(study: dict) -> dict[str, list[str]]:
    """The pooling configs each search beyond the pooling (issue 17) runs on, as `default`, `best` or a config slug."""
    space, ext = get_space(study["backbone"]), study.get("extensions") or {}
    if ext.get("conet") and study["backbone"] == "resnet50":
        raise UsageError("conet searches the widths of resnet20 and resnet18 (basic blocks) only")
    return {m: [str(c) if str(c) in ("default", "best") else space.parse(c).slug for c in ext[m]["configs"]]
            for m in ("dgconv", "conet") if m in ext}


def find_study(profile: dict, dataset: str, backbone: str) -> dict | None:
    return next((s for s in profile["studies"] if (s["dataset"], s["backbone"]) == (dataset, backbone)), None)


@dataclass(frozen=True)
class Settings:
    """A validated profile. Sections are read through the methods, which return copies."""

    name: str
    device: str
    threads: int
    precision: str
    channels_last: bool
    compile: bool
    gpus_per_job: int  # what each training or search job asks of the scheduler (profile key, else 1 unless cpu)
    _raw: dict
    gpu_slots: int = 1  # jobs sharing one GPU (the device locks and the workflow's gpu resource)

    def protocol(self, backbone: str, dataset: str) -> dict:
        """Standalone-training hyperparameters; a relaxed-space path trains with its base backbone's protocol."""
        return protocol(self._raw, RELAXED.base if backbone == RELAXED.name else backbone, dataset)

    def search(self, backbone: str, dataset: str) -> dict:
        return search_settings(self._raw, backbone, dataset)

    def baselines(self) -> dict:
        return copy.deepcopy(self._raw.get("baselines") or {})

    def extensions(self) -> dict:
        """The `extensions` section (issue 17: dgconv and conet settings), schema defaults filled."""
        return copy.deepcopy(self._raw["extensions"])

    def dataset_params(self, dataset: str) -> dict:
        return dataset_params(self._raw, dataset)

    @property
    def studies(self) -> list[dict]:
        return copy.deepcopy(self._raw["studies"])

    def study(self, dataset: str, backbone: str) -> dict | None:
        return copy.deepcopy(find_study(self._raw, dataset, backbone))

    def as_dict(self) -> dict:
        return copy.deepcopy(self._raw)


def resolve(profile: str | dict | Settings) -> Settings:
    """A profile name, a .yaml path or a dict, validated (defaults filled in) and frozen."""
    if isinstance(profile, Settings):
        return profile
    raw = load(profile) if isinstance(profile, str) else validate(profile)
    return Settings(name=raw["profile"], device=raw["device"], threads=raw["threads"], precision=raw["precision"],
                    channels_last=raw["channels_last"], compile=raw["compile"],
                    gpus_per_job=raw.get("gpus_per_job", 0 if raw["device"] == "cpu" else 1), _raw=raw,
                    gpu_slots=raw["gpu_slots"])
