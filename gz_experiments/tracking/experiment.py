"""Where runs land and what the MLflow UI says about them on its first screen.

MLflow 3 opens an experiment in its GenAI view (traces, token usage) unless the experiment is
tagged `mlflow.experimentKind=custom_model_development`; a plain `mlflow ui` on a fresh store
then shows the "Default" experiment's GenAI overview, one click away from the runs. So:

- runs go to the experiment `galaxy-zoo` unless the user chose one the MLflow way
  (`MLFLOW_EXPERIMENT_NAME` / `MLFLOW_EXPERIMENT_ID`, `mlflow run --experiment-name`, or a run
  that is already active);
- whatever experiment a step's run lands in is tagged as a model-training experiment and given
  a description (`mlflow.note.content`) when it has none, so the user's own names work too;
- each run is described in a paragraph: what the step does, on what, and when it ends, its
  headline result. Registered models and versions get descriptions from `describe_version`.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.config import StepConfig

DEFAULT_EXPERIMENT = "galaxy-zoo"
KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
NOTE_TAG = "mlflow.note.content"
CHOSEN_BY_USER = ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")

EXPERIMENT_NOTE = (
    "Galaxy Zoo models trained with gz_experiments: each main run is one pass of the pipeline "
    "(simulate or ingest -> shard -> train -> evaluate -> register -> predict) with its steps as "
    "child runs named by step. Training runs log per-question losses each epoch, checkpoints and "
    "the model; evaluate runs hold the paper's per-question test metrics. Compare training runs "
    "by their best_val_loss metric and evaluate runs by test/mean_accuracy and test/mean_mae."
)

# What each step does, in the words a run's description starts with, and the config fields
# worth naming (only those that are set are shown).
PURPOSE: dict[str, tuple[str, tuple[str, ...]]] = {
    "simulate": ("Rendered simulated galaxies and simulated volunteers' votes over the gzd5 "
                 "tree (the embedded default dataset).", ("n_galaxies", "img_size", "seed")),
    "ingest": ("Read public Galaxy Zoo release files into one standard catalog (rows read = "
               "written + rejected).", ("sources", "releases", "out")),
    "combine": ("Combined catalogs of several campaigns, each on its own tree, into one catalog "
                "on their derived tree (for pretraining on every campaign at once).",
                ("catalogs", "campaigns", "out")),
    "shard": ("Wrote a catalog's images and votes into TFRecord shards with a manifest.",
              ("catalog", "schema", "img_size", "shard_dir")),
    "train": ("Trained a CNN with the Dirichlet-multinomial loss over the decision tree "
              "(per-question losses each epoch, checkpoints, the best model).",
              ("shard_dir", "schema", "architecture", "image_size", "epochs")),
    "import_encoder": ("Imported a published encoder (a timm / zoobot checkpoint or Keras "
                       "weights) as a galaxy model with an untrained head, ready to finetune.",
                       ("source", "architecture", "img_size", "greyscale", "name")),
    "finetune": ("Finetuned a trained model's encoder with a new head on new labels.",
                 ("model_uri", "shard_dir", "schema", "mode", "epochs")),
    "evaluate": ("Evaluated a model on a labelled split with the paper's protocol "
                 "(per-question accuracy, vote-fraction MAE, coverage).",
                 ("model_uri", "shard_dir", "split")),
    "register": ("Registered the best training run's model and moved the alias only to a "
                 "better one.", ("name", "alias", "run_id")),
    "predict": ("Predicted vote fractions with MC-dropout uncertainty for new galaxies.",
                ("model_uri", "input", "output")),
    "embed": ("Computed encoder representations: similar galaxies and anomaly scores.",
              ("model_uri", "input")),
    "acquire": ("Ranked unlabelled galaxies by what volunteers' votes would teach the model "
                "(BALD), to choose which galaxies volunteers see next.",
                ("model_uri", "input", "acquisition", "k")),
    "tune": ("Optuna search over crop, image size, dropout, learning rate and batch size; one "
             "child run per trial.", ("study_name", "n_trials", "shard_dir")),
    "pretrain": ("Pretrained one model on every campaign at once: combine -> shard -> train "
                 "(campaigns balanced) -> evaluate per campaign -> register, each a child run.",
                 ("catalogs", "campaigns", "campaign_balance", "out", "model_name")),
    "main": ("The whole pipeline on one dataset: simulate -> shard -> train -> evaluate -> "
             "register -> predict, each step a child run of this one.", ("extra",)),
}  # fmt: skip


def use_project_experiment() -> None:
    """Log to `galaxy-zoo` unless the user (or `mlflow run`) already chose an experiment: in
    the environment, with a run, or with `mlflow.set_experiment` in this process (a notebook)."""
    import mlflow.tracking.fluent as fluent

    # MLflow has no public "was an experiment set?"; its own start_run reads this attribute.
    chosen_here = getattr(fluent, "_active_experiment_id", None) is not None
    if mlflow.active_run() or chosen_here or any(os.environ.get(k) for k in CHOSEN_BY_USER):
        return
    mlflow.set_experiment(DEFAULT_EXPERIMENT)


def describe_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training (the UI's "Model training" view) and describe it,
    keeping whatever kind or description the user already gave it."""
    client = MlflowClient()
    tags = client.get_experiment(experiment_id).tags
    if KIND_TAG not in tags:
        client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING)
    if NOTE_TAG not in tags:
        client.set_experiment_tag(experiment_id, NOTE_TAG, EXPERIMENT_NOTE)


def purpose_text(config: StepConfig) -> str:
    """The first paragraph of a run's description: what the step does and on what."""
    sentence, names = PURPOSE.get(config.STEP, (f"The {config.STEP} step.", ()))
    shown = [(name, getattr(config, name, None)) for name in names]
    given = ", ".join(f"{name}={_short(value)}" for name, value in shown if value not in ("", None))
    return f"{sentence} Preset `{config.preset}`" + (f"; {given}." if given else ".")


def describe_run(config: StepConfig) -> None:
    """Describe the active run when it starts (a failed run still says what it tried)."""
    run = mlflow.active_run()
    describe_experiment(run.info.experiment_id)
    mlflow.set_tag(NOTE_TAG, purpose_text(config))


def describe_outcome(outcome: str) -> None:
    """Add the headline result to the active run's description, once, when the step ends."""
    run = MlflowClient().get_run(mlflow.active_run().info.run_id)
    note = run.data.tags.get(NOTE_TAG, "")
    marker = "\n\n**Result:** "
    mlflow.set_tag(NOTE_TAG, note.split(marker)[0] + marker + outcome.strip())


def describe_version(
    name: str, version: str, run_id: str, tags: dict[str, str], loss: float
) -> None:
    """Registered model + version descriptions: what data, tree, preset and headline metric."""
    client = MlflowClient()
    text = (
        f"Trained by run {run_id} with the `{tags.get('gz.preset', '?')}` preset: architecture "
        f"{tags.get('gz.architecture', '?')}, tree {tags.get('gz.schema', '?')}, data manifest "
        f"{tags.get('gz.data_manifest_sha256', '?')[:12]}. Best validation loss {loss:.4f} "
        f"(Dirichlet-multinomial negative log-likelihood per galaxy, lower is better)."
    )
    client.update_model_version(name, version, description=text)
    if not client.get_registered_model(name).description:
        client.update_registered_model(
            name,
            description=(
                "Galaxy Zoo vote-fraction models from gz_experiments (pyfunc: images in, vote "
                "fractions with MC-dropout uncertainty out). The `champion` alias holds the "
                "version with the lowest validation loss; each version says what it was "
                "trained on."
            ),
        )


def _short(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 80 else "..." + text[-77:]
