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
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from poolnas.errors import UsageError
from poolnas.arch.spaces import RELAXED, Config, get_space
from poolnas.data.datasets import DATASETS, get_dataset

PROFILE_DIR = Path(__file__).with_name("profiles")
SCHEMA_PATH = PROFILE_DIR / "schema.yaml"
# The paper's studies (dataset, backbone): Tables 1-2 (and the figures), Table 3's two rows, Table 4. A study of a
# profile fills the rows of the one it `stands_for` (default: its own dataset, with its backbone).
PAPER_STUDIES = (("cifar10", "resnet20"), ("cifar10", "resnet18"), ("cifar100", "resnet50"), ("food101", "resnet50"))
RESIZED = "resized-crop-flip"  # the loader recipe of ImageNet-style data (Food101): the ImageNet stem


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
    _check_finite(profile, source)
    try:
        jsonschema.validate(profile, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.absolute_path)) or "(top level)"
        raise UsageError(f"{source}: {where}: {err.message}") from None
    profile = copy.deepcopy(profile)
    _fill_defaults(profile, schema, schema)
    for name, entry in profile["datasets"].items():
        _check_crop(name, entry, source)
        parameters = get_dataset(name).parameters
        if parameters is not None:  # the dataset's own bounds (a generated set's size, a subset's room), not later
            try:
                parameters.params({k: v for k, v in entry.items() if k != "crop"})
            except UsageError as err:
                raise UsageError(f"{source}: datasets/{name}: {err}") from None
    for section in ("protocols", "search"):
        for key, entry in profile[section].items():
            _check_widths(key, entry.get("stage_widths"), f"{source}: {section}/{key}")
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
            spec = study["search"]
            unplanned = set(spec.get("baseline_seeds_by_method", {})) - set(spec.get("baselines", []))
            if unplanned:
                raise UsageError(f"search/baseline_seeds_by_method names {', '.join(sorted(unplanned))}, which "
                                 "search/baselines does not run (allowed: the methods listed there)")
            for models in study["search"].get("mixture", []):
                if models > len(get_space(study["backbone"])):
                    raise UsageError(f"mixture of {models} SuperNets exceeds the {len(get_space(study['backbone']))} "
                                     f"configs of {study['backbone']}")
            if spec.get("random", 0) > len(get_space(study["backbone"])):
                raise UsageError(f"search/random: {spec['random']} candidates exceed the "
                                 f"{len(get_space(study['backbone']))} configs of {study['backbone']}")
        except UsageError as err:
            raise UsageError(f"{where}: {err}") from None
    stand_ins(profile, source)  # every stands_for names a paper study of its backbone, each at most once
    return profile


def _check_finite(value: Any, source: str, where: tuple = ()) -> None:
    """Refuse NaN and infinities anywhere (YAML reads `.nan` and `.inf` as floats): they pass every bound of the
    schema (NaN compares false with everything), and torch would start training on them and fail much later."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{source}: {'/'.join(map(str, where)) or '(top level)'}: {value} is not a finite number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, sub in items:
        _check_finite(sub, source, (*where, key))


def _check_widths(key: str, widths: list[int] | None, where: str) -> None:
    """One width per stage of the backbone (the parts of its configs), and none for ResNet20."""
    backbone = key.split("@")[0]
    if widths is None:
        return
    if backbone == "resnet20":
        raise UsageError(f"{where}: stage_widths is for resnet18 and resnet50 (the relaxed ResNet20 networks of the "
                         "baselines have fixed widths)")
    if len(widths) != get_space(backbone).n_parts:
        raise UsageError(f"{where}: stage_widths needs {get_space(backbone).n_parts} widths (one per stage of "
                         f"{backbone}), got {len(widths)}")


def _check_crop(name: str, entry: dict, source: str) -> None:
    """`crop` is for datasets read with random resized crops, and no larger than their (generated) images."""
    if "crop" not in entry:
        return
    spec = get_dataset(name)
    if spec.recipe != RESIZED:
        crops = ", ".join(n for n, d in DATASETS.items() if d.recipe == RESIZED)
        raise UsageError(f"{source}: datasets/{name}: crop applies to the datasets read with random resized crops "
                         f"({crops}), not {name} (recipe {spec.recipe})")
    if spec.generator is not None:
        size = spec.generator.params({k: v for k, v in entry.items() if k != "crop"})["size"]
        if entry["crop"] > size:
            raise UsageError(f"{source}: datasets/{name}: crop {entry['crop']} exceeds the images' size {size}")


def stand_ins(profile: dict, source: str = "profile") -> dict[tuple[str, str], str]:
    """{(paper dataset, backbone): our dataset} for every study that stands for one of PAPER_STUDIES (its
    `stands_for` key, else its own dataset); a UsageError for a pair the paper does not have, a study read with
    another stem than the paper's, or two studies standing for the same."""
    out: dict[tuple[str, str], str] = {}
    for study in profile["studies"]:
        dataset, backbone = study["dataset"], study["backbone"]
        paper = (study.get("stands_for", dataset), backbone)
        where = f"{source}: study {dataset}/{backbone}"
        if paper not in PAPER_STUDIES:
            if "stands_for" not in study:
                continue  # a study of its own (glyphs in mini): Tables 1-2 may still take it (analysis.tables)
            known = ", ".join(d for d, b in PAPER_STUDIES if b == backbone)
            raise UsageError(f"{where}: stands_for {paper[0]}, but the paper has no {paper[0]}/{backbone} study "
                             f"(for {backbone}: {known})")
        ours, theirs = get_dataset(dataset).recipe == RESIZED, get_dataset(paper[0]).recipe == RESIZED
        if ours != theirs:
            stem = lambda resized: "the ImageNet stem" if resized else "the CIFAR stem"  # noqa: E731
            raise UsageError(f"{where}: stands_for {paper[0]}, whose {backbone} has {stem(theirs)}, but {dataset} "
                             f"is read with recipe {get_dataset(dataset).recipe} ({stem(ours)})")
        if paper in out:
            raise UsageError(f"{where}: {out[paper]}/{backbone} already stands for {paper[0]}/{backbone}")
        out[paper] = dataset
    return out


@lru_cache(maxsize=None)
def _load_cached(path: str) -> dict:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UsageError(f"profile {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    except UnicodeDecodeError as err:  # e.g. saved as Latin-1 by an editor: one line, not a traceback
        raise UsageError(f"profile {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                         f"{err.start}); save it as UTF-8") from None
    except OSError as err:
        raise UsageError(f"profile {path} cannot be read ({err.strerror})") from None
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
    """The parameters a dataset is prepared with (generated sets'); `crop` is the loader's (`crop`)."""
    if dataset not in profile["datasets"]:
        raise UsageError(f"dataset {dataset!r} is not in profile {profile['profile']} "
                         f"(has: {', '.join(profile['datasets'])})")
    return {k: v for k, v in profile["datasets"][dataset].items() if k != "crop"}


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

    def crop(self, dataset: str) -> int | None:
        """The crop side of a dataset read with random resized crops; None: the loader's default (224)."""
        dataset_params(self._raw, dataset)  # the same error for a dataset the profile does not list
        return self._raw["datasets"][dataset].get("crop")

    def stand_ins(self) -> dict[tuple[str, str], str]:
        """{(paper dataset, backbone): our dataset}: which of our studies fills which of the paper's rows."""
        return stand_ins(self._raw)

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
