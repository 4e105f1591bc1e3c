"""Evaluation with the GZ DECaLS paper's protocol: `protocol` (the measures, on arrays),
`inputs` (a model's samples and the votes of a shard split), `plots`, and `run` (the step)."""
