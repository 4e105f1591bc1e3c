"""The `pretrain` pipeline: one model on several campaigns' catalogs at once, in one command.

    combine -> shard -> train -> evaluate -> register

each step its own entry point, run as a child of the `pretrain` run by the runner the caller
gives (`tracking.projects.ProjectRunner`, which reuses a FINISHED run with the same parameters
and code, as `main` does). What happens in each:

- combine  -> out/combined/catalog.parquet and tree.yaml: the catalogs stacked on their derived
              tree (each campaign's questions suffixed -<campaign>, `campaigns:` declared);
- shard    -> out/shards, the combined catalog on that tree;
- train    -> a model on the derived tree, `campaign_balance` weighting the campaigns (default
              equal: a 300k campaign does not drown a 3k one);
- evaluate -> the test split, with metrics per campaign (`test/campaign/<c>/...`);
- register -> the model under `model_name`: an ordinary registered model that finetune, embed,
              predict and serve take as they take any other.

Every step gets the same preset; `extra` adds per-step parameters ("train.architecture=...").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gz_experiments.config import PretrainConfig
from gz_experiments.errors import UserError
from gz_experiments.finished_run import FinishedRun
from gz_experiments.pipeline import (
    OUTPUTS_EXIST,
    Runner,
    registered_uri,
    step_overrides,
    steps_table,
)

STEPS = ("combine", "shard", "train", "evaluate", "register")
SPLIT = "test"
TREE_SUFFIXES = (".yaml", ".yml", ".json")
# Per campaign, what the parent run shows first (evaluate logs them as test/campaign/<c>/<key>).
CAMPAIGN_HEADLINE = ("n_galaxies", "mean_accuracy", "mean_mae")


@dataclass
class PretrainResult:
    preset: str
    steps: dict[str, FinishedRun] = field(default_factory=dict)
    catalog: str = ""
    tree_file: str = ""
    shard_dir: str = ""
    model_uri: str = ""
    registered_uri: str = ""

    def headline_metrics(self) -> dict[str, float]:
        """Train's best and image-blind validation losses, and the test split's per-campaign
        metrics, under their own names: what the parent run carries."""
        train = self.steps["train"].metrics if "train" in self.steps else {}
        out = {k: train[k] for k in ("best_val_loss", "baseline_val_loss") if k in train}
        evaluate = self.steps["evaluate"].metrics if "evaluate" in self.steps else {}
        for key, value in sorted(evaluate.items()):
            head, _, name = key.rpartition("/")
            overall = head == SPLIT and name in CAMPAIGN_HEADLINE[1:]
            per_campaign = head.startswith(f"{SPLIT}/campaign/") and name in CAMPAIGN_HEADLINE
            if overall or per_campaign:
                out[key] = value
        return out


def absolute(path: str) -> str:
    """Child runs start in the project folder: the user's relative paths are made absolute."""
    return str(Path(path).expanduser().resolve())


def combine_parameters(config: PretrainConfig, out: Path) -> dict[str, str]:
    trees = [absolute(t) if Path(t).suffix.lower() in TREE_SUFFIXES else t for t in config.trees]
    return {
        "preset": config.preset,
        "catalogs": ",".join(absolute(c) for c in config.catalogs),
        "trees": ",".join(trees),
        "campaigns": ",".join(config.campaigns),
        "class_columns": config.class_columns_text(),
        "fractional_votes": str(config.fractional_votes).lower(),
        "fill_missing_votes": str(config.fill_missing_votes).lower(),
        "missing_questions": config.missing_questions,
        "out": str(out / "combined"),
        # A re-run (new code, reuse=false) writes the same catalog again where it was.
        "overwrite": "true",
    }


def combined_outputs(run: FinishedRun) -> tuple[str, str]:
    catalog, tree = run.tags.get("gz.catalog", ""), run.tags.get("gz.tree_file", "")
    if not (catalog and tree):
        raise UserError(f"combine run {run.run_id} recorded no catalog or tree (tags gz.catalog, "
                        f"gz.tree_file)")  # fmt: skip
    return catalog, tree


OUTPUTS = {**OUTPUTS_EXIST, "combine": lambda run: Path(run.tags.get("gz.catalog", "")).is_file()}


def run_pretrain(config: PretrainConfig, runner: Runner) -> PretrainResult:
    """Run (or reuse) every step in order; a failed step stops the pipeline with a UserError."""
    extra = step_overrides(config.extra, STEPS)
    result = PretrainResult(preset=config.preset)
    out = Path(absolute(config.out))

    def run(step: str, parameters: dict[str, str]) -> FinishedRun:
        result.steps[step] = runner.run(step, {**parameters, **extra[step]}, OUTPUTS.get(step))
        return result.steps[step]

    preset = {"preset": config.preset}
    combined = run("combine", combine_parameters(config, out))
    result.catalog, result.tree_file = combined_outputs(combined)
    result.shard_dir = str(out / "shards")
    run("shard", {**preset, "catalog": result.catalog, "schema": result.tree_file,
                  "shard_dir": result.shard_dir, "overwrite": "true",
                  "fractional_votes": str(config.fractional_votes).lower()})  # fmt: skip
    train = run("train", {**preset, "shard_dir": result.shard_dir, "schema": result.tree_file,
                          "campaign_balance": config.campaign_balance})  # fmt: skip
    result.model_uri = f"runs:/{train.run_id}/model"
    run("evaluate", {**preset, "model_uri": result.model_uri, "shard_dir": result.shard_dir,
                     "split": SPLIT})  # fmt: skip
    register = run("register", {"name": config.model_name, "run_id": train.run_id})
    result.registered_uri = registered_uri(register, config.model_name)
    return result


def plan_text(config: PretrainConfig) -> str:
    return (
        f"gz_experiments pretrain, preset {config.preset}: {len(config.catalogs)} catalogs, "
        f"{' -> '.join(STEPS)}, each a child MLflow run (steps already run with the same "
        f"parameters and code are reused). Work folder {absolute(config.out)}."
    )


def summary_text(result: PretrainResult, *, ui_command: str, parent_run_id: str,
                 elapsed: float | None = None) -> str:  # fmt: skip
    """Where everything went, the per-campaign test metrics, and how to finetune the model."""
    took = f" in {elapsed / 60:.1f} min" if elapsed is not None else ""
    lines = [f"gz_experiments pretrain (preset {result.preset}) finished{took}", ""]
    lines += steps_table(result.steps)
    lines += ["", f"Metrics ({SPLIT} split of {result.shard_dir}):"]
    lines += [f"  {key:<44} {value:.4f}" for key, value in result.headline_metrics().items()]
    lines += [
        "",
        f"Combined catalog:  {result.catalog}",
        f"Derived tree:      {result.tree_file}",
        f"Trained model:     {result.model_uri}",
        f"Registered model:  {result.registered_uri}",
        f"MLflow UI:         {ui_command}   (parent run {parent_run_id})",
        "",
        "Finetune it on a new task (shards at the same img_size):",
        f"  gz finetune --model-uri {result.registered_uri} --shard-dir <shards of the new task>",
    ]
    return "\n".join(lines) + "\n"
