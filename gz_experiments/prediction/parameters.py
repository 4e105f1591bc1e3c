"""The parameters a served model takes with each request, shared by the model signature
(tracking.models), the served model (serving) and Spark batch prediction (prediction.spark)."""

# Request parameters and their defaults: the model signature's ParamSchema and serving.model.
REQUEST_DEFAULTS = {"n_samples": 5, "mc_mode": "head", "batch_size": 64, "seed": 0}
# Batch-job parameters and their defaults (not sampling settings), and what "skip" adds.
BATCH_DEFAULTS = {"on_unreadable": "raise", "concentrations": False}
ON_UNREADABLE = ("raise", "skip")
SKIPPED_REASON = "skipped_reason"
