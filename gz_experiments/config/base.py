"""The base of every step's config: typed fields with their ranges, presets, self-validation.

A config is a frozen dataclass whose fields are declared with `setting(default, help, ...)`. The
metadata of each field says what values are allowed (`ge`, `gt`, `le`, `choices`), so that

- constructing a config validates it completely (`__post_init__`): an invalid config never
  exists, and nothing (no simulation, no shards, no MLflow run) happens before the check;
- the command-line flags, their help text and the MLproject parameters are generated from the
  same declarations (`gz_experiments.cli`, `gz_experiments.mlproject`).

    cfg = TrainConfig.resolve("debug", epochs=3)       # preset values, then overrides
    cfg = TrainConfig.from_strings("debug", {"epochs": "3"})   # from -P / CLI text
    cfg.flatten()  ->  {"train.epochs": "3", ...}       # logged once as MLflow params
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from gz_experiments.errors import UserError

PRESET_NAMES = ("debug", "cpu", "real", "paper")
# A step without settings of its own for a preset takes those of another: `real` (small sets of
# real survey images on a CPU) differs from `cpu` only where real images need it.
PRESET_FALLBACK = {"real": "cpu"}
AUTO = "auto"


class ConfigError(UserError):
    """An invalid configuration: every problem of the config, in one line."""


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    default_factory: Callable[[], Any] | None = None,
    path: bool = False,
) -> Any:
    """A config field with its help text and allowed values.

    `path=True` marks an input that must exist when given (MLproject type `path` where the
    field is required); ranges apply to numbers and to every item of a tuple.
    """
    metadata = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    metadata["path"] = path
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def split_list_fields(config: Any, names: tuple[str, ...]) -> None:
    """In __post_init__: "a.csv,b.csv" given in code (as a flag or MLproject parameter gives it)
    means two items, and a list means a tuple, so the frozen config always holds tuples."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        elif isinstance(value, list):
            value = tuple(value)
        object.__setattr__(config, name, value)


def gpu_visible() -> bool:
    # Importing TensorFlow costs seconds, so only do it when a preset actually depends on it.
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def base_type(annotation: Any) -> Any:
    """int | None -> int; the container type of tuple[int, ...] / dict[str, str] stays."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return base_type(inner[0])
    return annotation


@dataclass(frozen=True)
class Settings:
    """Validated, flattenable settings; `StepConfig` adds presets for a step's config."""

    STEP: ClassVar[str] = ""  # the step's name: prefix of its logged params

    def __post_init__(self) -> None:
        problems = [*self._field_problems(), *self.problems()]
        if problems:
            name = self.STEP or type(self).__name__
            raise ConfigError(f"invalid {name} config: " + "; ".join(problems))

    def problems(self) -> Iterator[str]:
        """Cross-field checks of a subclass (each problem one short phrase)."""
        return iter(())

    def _field_problems(self) -> Iterator[str]:
        hints = field_types(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            problem = type_problem(value, base_type(hints[f.name]))
            if problem is None:
                problem = range_problem(value, f.metadata)
            if problem is not None:
                yield f"{f.name}={value!r} {problem}"

    @classmethod
    def convert(cls, values: dict[str, str]) -> dict[str, Any]:
        """Text values (CLI, -P, request params) -> typed values; "" is left out."""
        hints = field_types(cls)
        known = {f.name for f in fields(cls)}
        return {
            name: convert_text(name, text, hints[name]) if name in known else text
            for name, text in values.items()
            if str(text) != ""
        }

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flatten(self, prefix: str | None = None) -> dict[str, str]:
        """Dotted keys (`train.batch_size`) as strings: the form MLflow params take."""
        return flatten_dict(self.to_dict(), self.STEP if prefix is None else prefix)

    @classmethod
    def describe(cls, name: str) -> str:
        """Help text of a field with its allowed values, for --help and the MLproject."""
        f = next(f for f in fields(cls) if f.name == name)
        meta = f.metadata
        parts = [meta.get("help", "")]
        bounds = [f"{op} {meta[key]}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if meta.get(key) is not None]  # fmt: skip
        if bounds:
            parts.append(f"({' and '.join(bounds)})")
        if meta.get("choices"):
            parts.append(f"(one of {', '.join(map(str, meta['choices']))})")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class StepConfig(Settings):
    """Base of every step's config: a preset, then the user's values."""

    preset: str = setting("paper", "debug, cpu, real or paper (auto: paper with a GPU, else cpu)")
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def resolve(cls, preset: str | None = None, **overrides: Any) -> Self:
        """Preset values, then the non-None overrides; unknown names are a ConfigError."""
        preset = resolve_preset(preset)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"{cls.STEP or cls.__name__} has no field(s) {unknown}; known fields: "
                f"{sorted(known - {'preset'})}"
            )
        values = dict(cls.PRESETS.get(preset, cls.PRESETS.get(PRESET_FALLBACK.get(preset), {})))
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["preset"] = preset
        return cls(**values)

    @classmethod
    def from_strings(cls, preset: str | None, values: dict[str, str]) -> Self:
        """Like `resolve`, from text (MLproject -P values); "" means "the preset's value"."""
        return cls.resolve(preset, **cls.convert(values))

    def _field_problems(self) -> Iterator[str]:
        yield from super()._field_problems()
        if self.preset not in PRESET_NAMES:
            yield f"preset={self.preset!r} is not one of {', '.join(PRESET_NAMES)}"


def resolve_preset(preset: str | None) -> str:
    preset = preset or AUTO
    if preset == AUTO:
        return "paper" if gpu_visible() else "cpu"
    if preset not in PRESET_NAMES:
        raise ConfigError(
            f"unknown preset {preset!r}: use one of {AUTO}, {', '.join(PRESET_NAMES)}"
        )
    return preset


def type_problem(value: Any, expected: Any) -> str | None:
    origin = typing.get_origin(expected)
    if origin is tuple:
        if not isinstance(value, tuple):
            return "must be a comma-separated list"
        item = typing.get_args(expected)[0]
        bad = [v for v in value if type_problem(v, item) is not None]
        return f"has item(s) of the wrong type {bad[:3]}" if bad else None
    if origin is dict:
        return None if isinstance(value, dict) else "must be key=value pairs"
    if expected is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be a whole number"
    if expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            return "must be a finite number"
        return None if ok else "must be a number"
    if expected is str:
        return None if isinstance(value, str) else "must be text"
    return None


def range_problem(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            continue
        if meta.get("choices") and item not in meta["choices"]:
            return f"is not one of {', '.join(map(str, meta['choices']))}"
        if isinstance(item, str):
            continue
        if meta.get("ge") is not None and not item >= meta["ge"]:
            return f"must be >= {meta['ge']}"
        if meta.get("gt") is not None and not item > meta["gt"]:
            return f"must be > {meta['gt']}"
        if meta.get("le") is not None and not item <= meta["le"]:
            return f"must be <= {meta['le']}"
        if meta.get("lt") is not None and not item < meta["lt"]:
            return f"must be < {meta['lt']}"
    return None


# ---- text conversion (shared by the CLI and by configs built from -P strings) ---------------

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_mapping(text: str) -> dict[str, str]:
    out = {}
    for pair in (p for p in str(text).split(",") if p.strip()):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"expected key=value pairs, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def converter(annotation: Any) -> Callable[[str], Any]:
    """Text -> value of a field's type (raises ValueError with a readable message)."""
    annotation = base_type(annotation)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item = converter(typing.get_args(annotation)[0])
        return lambda text: tuple(
            item(part.strip()) for part in str(text).split(",") if part.strip()
        )
    if origin is dict:
        return parse_mapping
    if annotation is bool:
        return parse_bool
    if annotation is int:
        # "1.0" for an int field happens when a float-typed MLproject param is passed through.
        return lambda text: int(float(text)) if float(text).is_integer() else int(text)
    if annotation is float:
        return float
    return str


def convert_text(name: str, text: str, annotation: Any) -> Any:
    try:
        return converter(annotation)(text)
    except (ValueError, OverflowError) as exc:
        raise ConfigError(f"{name}={text!r}: {exc}") from None


def flatten_dict(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten_dict(value, name))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = "" if value is None else str(value)
    return out
