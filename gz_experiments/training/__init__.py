"""Training: `fit` (the Keras loop, checkpoints, exact resume), `run` (the train step: data,
baseline, fit -> TrainResult), `finetune` (the finetune step: a parent's encoder, a new head),
`distributed` (the multi-worker loop), `optimizers` (Adam with layer-wise learning rates) and
`plots` (loss curves). No MLflow here."""
