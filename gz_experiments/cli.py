"""Command-line flags built from a step's config, and the user-error boundary of every entry point.

Each config field `n_galaxies` becomes `--n-galaxies` (and `--n_galaxies`, because `mlflow run`
passes unknown `-P k=v` as `--k v`). Flags default to "unset", so the preset's value applies
unless the user gives one. An empty string also means unset: MLproject parameters default to ""
to let the preset decide.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from gz_experiments.config import StepConfig
from gz_experiments.errors import UserError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _converter(annotation: Any) -> Callable[[str], Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _converter(inner[0])
    if origin is tuple:
        item = _converter(args[0])
        return lambda text: tuple(item(part) for part in str(text).split(",") if part.strip())
    if origin is dict:
        return _parse_mapping
    if annotation is bool:
        return parse_bool
    if annotation in (int, float, str):
        # "1.0" for an int field happens when a float-typed MLproject param is passed through.
        if annotation is int:
            return lambda text: int(float(text)) if float(text).is_integer() else int(text)
        return annotation
    return str


def _parse_mapping(text: str) -> dict[str, str]:
    pairs = [p for p in str(text).split(",") if p.strip()]
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _unset_if_empty(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(text: str) -> Any:
        return None if str(text) == "" else convert(text)

    return wrapped


def build_parser(config_cls: type[StepConfig], doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        kebab, snake = f"--{f.name.replace('_', '-')}", f"--{f.name}"
        flags = [kebab] if kebab == snake else [kebab, snake]
        default = None if f.default is dataclasses.MISSING else f.default
        if f.name == "preset":
            helptext = "debug, cpu, paper, or auto (paper with a GPU, cpu without); default auto"
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            helptext = f"default: {shown!r} (or the preset's value)"
        parser.add_argument(
            *flags,
            dest=f.name,
            type=_unset_if_empty(_converter(hints[f.name])),
            default=None,
            metavar=f.name.upper(),
            help=helptext,
        )
    return parser


def parse_config(config_cls: type[StepConfig], argv: list[str] | None, doc: str | None):
    """Parse argv into a resolved config (preset values, then the flags that were given)."""
    args = vars(build_parser(config_cls, doc).parse_args(argv))
    preset = args.pop("preset")
    return config_cls.resolve(preset, **args)


def entry_point(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point's main: user errors print one line and exit 2, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if not sys.stderr.isatty():  # download bars would fill logs with carriage returns
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
