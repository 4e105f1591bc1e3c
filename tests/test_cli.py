import importlib
import subprocess
import sys

import pytest

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import ShardConfig, TrainConfig, TuneConfig
from gz_experiments.errors import UserError

from .conftest import REPO


def test_preset_then_flags_kebab_and_snake():
    cfg = parse_config(
        TrainConfig, ["--preset", "debug", "--batch-size", "4", "--learning_rate", "0.01"], None
    )
    assert cfg.preset == "debug" and cfg.architecture == "small_cnn"
    assert cfg.batch_size == 4 and cfg.learning_rate == 0.01


def test_empty_string_means_preset_value_and_types_convert():
    cfg = parse_config(
        TrainConfig,
        ["--preset", "paper", "--epochs", "", "--greyscale", "false", "--epochs", "3.0"],
        None,
    )
    assert cfg.epochs == 3 and cfg.greyscale is False
    assert parse_config(TrainConfig, ["--preset", "paper", "--epochs", ""], None).epochs == 1000


def test_tuple_fields_and_flatten():
    cfg = parse_config(TuneConfig, ["--preset", "debug", "--image-size-choices", "16,32"], None)
    assert cfg.image_size_choices == (16, 32)
    flat = cfg.flatten("tune")
    assert flat["tune.image_size_choices"] == "16,32" and flat["tune.preset"] == "debug"


def test_paper_defaults():
    cfg = TrainConfig.resolve("paper")
    assert (cfg.crop_fraction, cfg.image_size, cfg.batch_size, cfg.dropout) == (0.75, 224, 128, 0.2)
    assert (cfg.learning_rate, cfg.patience, cfg.greyscale) == (1e-3, 8, True)
    assert ShardConfig.resolve("paper").img_size == 300


def test_unknown_preset_or_field_is_a_user_error():
    with pytest.raises(UserError, match="unknown preset"):
        TrainConfig.resolve("huge")
    with pytest.raises(UserError, match="no field"):
        TrainConfig.resolve("debug", wings=2)


def test_entry_point_turns_user_error_into_one_line_and_exit_2(capsys):
    @entry_point
    def main():
        raise UserError("catalog.csv: column 'x' is negative in 1 row(s): 3")

    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: catalog.csv: column 'x' is negative in 1 row(s): 3"
    assert "Traceback" not in err


ENTRY_POINTS = sorted(p.stem for p in (REPO / "entry_points").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_works_for_every_entry_point(name, capsys):
    module = importlib.import_module(f"entry_points.{name}")
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "mlflow run" in out, f"entry_points/{name}.py docstring should give the exact command"
    assert "--preset" in out or "--name" in out


def test_python_m_entry_point_help_in_a_real_process():
    if not ENTRY_POINTS:
        pytest.skip("no entry points yet")
    out = subprocess.run(
        [sys.executable, "-m", f"entry_points.{ENTRY_POINTS[0]}", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
