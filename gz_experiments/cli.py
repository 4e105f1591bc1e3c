"""Command-line flags built from a step's config, and the user-error boundary of every entry point.

Each config field `n_galaxies` becomes `--n-galaxies` (and `--n_galaxies`, because `mlflow run`
passes unknown `-P k=v` as `--k v`). Flags default to "unset", so the preset's value applies
unless the user gives one. An empty string also means unset: MLproject parameters default to ""
to let the preset decide. The help of each flag is the field's description with its range.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from gz_experiments.config import StepConfig
from gz_experiments.config.base import converter, field_types
from gz_experiments.errors import UserError


def _flag_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Argparse type: "" = unset; a conversion error becomes argparse's one-line usage error."""

    def wrapped(text: str) -> Any:
        if str(text) == "":
            return None
        try:
            return convert(text)
        except (ValueError, OverflowError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return wrapped


def build_parser(config_cls: type[StepConfig], doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = field_types(config_cls)
    for f in fields(config_cls):
        kebab, snake = f"--{f.name.replace('_', '-')}", f"--{f.name}"
        flags = [kebab] if kebab == snake else [kebab, snake]
        if f.name == "preset":
            helptext = (
                "debug, cpu, real (small real image sets on a CPU), paper, or auto (paper with a "
                "GPU, cpu without); default auto"
            )
        else:
            default = f.default if f.default is not MISSING else f.default_factory()
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            helptext = f"{config_cls.describe(f.name)}; default {shown!r} (or the preset's)"
        parser.add_argument(
            *flags,
            dest=f.name,
            type=_flag_type(converter(hints[f.name])),
            default=None,
            metavar=f.name.upper(),
            help=helptext.replace("%", "%%"),
        )
    return parser


def parse_config(config_cls: type[StepConfig], argv: list[str] | None, doc: str | None):
    """Parse argv into a resolved, validated config (preset values, then the flags given)."""
    args = vars(build_parser(config_cls, doc).parse_args(argv))
    preset = args.pop("preset")
    return config_cls.resolve(preset, **args)


def quiet_libraries() -> None:
    """Environment that keeps TensorFlow's and MLflow's start-up chatter off a user's screen."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not sys.stderr.isatty():  # download bars would fill logs with carriage returns
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def entry_point(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point's main: user errors print one line and exit 2, no traceback; run as a
    program, TensorFlow's native start-up notices are filtered out (gz_experiments.quiet)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quiet_libraries()
        if "pytest" not in sys.modules:  # pytest captures descriptor 2 itself
            from gz_experiments.quiet import filter_native_stderr

            filter_native_stderr()
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def summary_main(
    config_cls: type[StepConfig],
    run: Callable[[Any], Any],
    doc: str | None,
    show: Callable[[Any], str] | None = None,
):
    """The main of a step that prints a summary of its result: `show(result)` on stdout, or
    the result's own summary on stderr (where stdout stays for data)."""

    @entry_point
    def main(argv: list[str] | None = None) -> Any:
        result = run(parse_config(config_cls, argv, doc))
        if show is None:
            print(result.summary(), file=sys.stderr)
        else:
            print(show(result))
        return result

    return main


def with_run_id(result: Any) -> str:
    """ "run <id>: <summary>" of the run a step just logged (what train and finetune print)."""
    from gz_experiments.tracking.runs import last_run_id  # MLflow loads after quiet_libraries

    run_id = last_run_id()  # none on the non-chief workers of a multi-worker job
    return f"run {run_id}: {result.summary()}" if run_id else result.summary()


def ui_main(argv: list[str]) -> None:
    """`gz ui [--host H] [--port P]`: the MLflow UI on the project's store, opened on the
    project's experiment in the Model training view; an HTTP tracking server already is the UI."""
    parser = argparse.ArgumentParser(prog="gz ui", description=ui_main.__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    args = parser.parse_args(argv)
    from gz_experiments.tracking import ui

    store = ui.store_uri()
    if store.startswith(("http://", "https://")):
        print(f"the tracking server {store} is the UI: open {ui.experiment_url(store, store)}")
        return
    base = f"http://{args.host}:{args.port}"
    print(f"starting the MLflow UI on {store} ...", flush=True)
    # A SIGTERM (a service manager, a test) stops the UI too, through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    process = ui.start_ui(store, args.host, args.port)
    try:
        if ui.wait_until_ready(process, base):
            print(f"MLflow UI ready: open {ui.experiment_url(base, store)}  (Ctrl-C stops it)",
                  flush=True)  # fmt: skip
        sys.exit(process.wait())
    except KeyboardInterrupt:
        print("stopping the MLflow UI", file=sys.stderr)
    finally:
        ui.stop(process)
