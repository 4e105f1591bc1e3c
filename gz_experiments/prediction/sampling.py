"""MC-dropout sampling: the one path by which predict, evaluate and the served model draw
concentrations from a model, set by `config.Sampling` (n_samples, mc_mode, batch_size, seed).

    sampler = Sampler(model, Sampling(n_samples=5, seed=0))
    concentrations = sampler(images, ids)      # (B, n_samples, n_answers)

`mc_mode`:
- "head" (default): the augment layer (inference mode: the central crop) and the encoder run
  once per image; the head runs `n_samples` times with its own dropout masks. When dropout is the
  only randomness this has the same distribution as n full passes, at a fraction of the cost.
  The masks of a galaxy are drawn from (seed, its id_str) alone, so its samples do not depend on
  the batch size, the batch it lands in, the order of the input or the machine (a Spark
  executor and a local run give the same numbers).
- "full": n whole passes as zoobot did: test-time augmentation (augment training=True), the
  encoder in inference mode, the head with dropout on. The model's generators restart from `seed`
  at the start of a call sequence (`Sampler.reset`), so a run is reproducible for the same input
  in the same batches.

`Sampler(model, sampling, jit_compile=None)`: XLA-compile these functions; None = on when a GPU
is visible. It changes speed, not head mode's samples (tests/test_jit.py; in full mode Keras'
dropout draws other masks under XLA), so it is an argument, not a `Sampling` setting. On a
2-core CPU XLA made EfficientNetB0 inference ~9x slower (benchmarks/bench_levers.py, variant
xla), so CPUs run the plain graphs.
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np

from gz_experiments.config import Sampling, gpu_visible
from gz_experiments.model_files import SEED_STATE_SUFFIX

# model -> {(n_samples, mc_mode, jit): compiled functions}. Tracing EfficientNet takes seconds,
# so a served model must not retrace per request. Weak keys: a dropped model frees its entry.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def galaxy_seed(seed: int, id_str: str) -> np.random.SeedSequence:
    """A galaxy's own random stream: from the seed and a stable hash of its id (not Python's
    salted hash(), which differs between processes)."""
    words = np.frombuffer(hashlib.sha256(str(id_str).encode()).digest()[:16], dtype=np.uint32)
    return np.random.SeedSequence([seed, *words.tolist()])


def dropout_masks(ids: list[str], seed: int, n_samples: int, width: int, rate: float) -> np.ndarray:
    """(B, n_samples, width) inverted-dropout masks (0 or 1 / (1 - rate)), one stream per galaxy."""
    masks = np.empty((len(ids), n_samples, width), dtype=np.float32)
    keep = 1.0 - rate
    for i, id_str in enumerate(ids):
        draws = np.random.default_rng(galaxy_seed(seed, id_str)).random((n_samples, width))
        masks[i] = (draws < keep) / keep if rate > 0 else 1.0
    return masks


class Sampler:
    """Concentrations (B, n_samples, n_answers) of a batch of images, per `Sampling`."""

    def __init__(self, model, sampling: Sampling, jit_compile: bool | None = None):
        from gz_experiments.models import split_model

        self.model, self.sampling = model, sampling
        _, _, head = split_model(model)
        self.rate = float(head.get_layer("dropout").rate)
        self.width = int(head.input_shape[-1])
        jit = gpu_visible() if jit_compile is None else bool(jit_compile)
        self.functions = compiled(model, sampling.n_samples, sampling.mc_mode, jit)
        self.reset()

    def reset(self) -> None:
        """Restart the model's generators from the seed (what "full" mode draws from)."""
        if self.sampling.mc_mode == "full":
            reseed(self.model, self.sampling.seed)

    def __call__(self, images: np.ndarray, ids: list[str]) -> np.ndarray:
        n = self.sampling.n_samples
        if self.sampling.mc_mode == "full":
            return self.functions["full"](images).numpy()
        masks = dropout_masks(ids, self.sampling.seed, n, self.width, self.rate)
        return self.functions["sample"](images, masks).numpy()


def compiled(model, n_samples: int, mc_mode: str, jit: bool = False) -> dict:
    cache = _COMPILED.setdefault(model, {})
    if (n_samples, mc_mode, jit) not in cache:
        cache[n_samples, mc_mode, jit] = _compile(model, n_samples, mc_mode, jit)
    return cache[n_samples, mc_mode, jit]


def _compile(model, n_samples: int, mc_mode: str, jit: bool) -> dict:
    import tensorflow as tf

    from gz_experiments.models import split_model

    augment, encoder, head = split_model(model)
    logits, concentrations = head.get_layer("logits"), head.get_layer("concentrations")
    width = int(head.input_shape[-1])
    # A free batch dimension: one trace serves every batch, including the short last one.
    images_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    # On a CPU, two half-batches as independent branches: TensorFlow runs them side by side and
    # keeps both cores busier than one pass, whose many small ops leave them idle in turns.
    # Measured 1.19x / 1.16x / 1.07x at 64 / 128 / 224 px on 2 cores, same numbers (per-image
    # ops only; benchmarks/bench_mc.py). A GPU (or XLA) wants the whole batch.
    halves = not jit and not gpu_visible()

    def encode(images):
        return tf.cast(encoder(augment(images, training=False), training=False), tf.float32)

    def encode_halves(images):
        middle = tf.shape(images)[0] // 2
        return tf.concat([encode(images[:middle]), encode(images[middle:])], axis=0)

    @tf.function(input_signature=[images_spec], jit_compile=jit)
    def features(images):
        if not halves:
            return encode(images)
        # oneDNN refuses an empty batch: a single image goes through whole.
        return tf.cond(
            tf.shape(images)[0] > 1, lambda: encode_halves(images), lambda: encode(images)
        )

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, width), tf.float32),
            tf.TensorSpec((None, n_samples, width), tf.float32),
        ],
        jit_compile=jit,
    )
    def head_samples(feats, masks):
        # The head's Dense + concentrations on masked copies of the features: the dropout layer
        # itself is replaced by the per-galaxy masks.
        dropped = tf.reshape(feats[:, None, :] * masks, (-1, width))
        alphas = concentrations(logits(dropped))
        return tf.reshape(alphas, (-1, n_samples, alphas.shape[-1]))

    @tf.function(
        input_signature=[images_spec, tf.TensorSpec((None, n_samples, width), tf.float32)],
        jit_compile=jit,
    )
    def sample(images, masks):
        # One graph: calling features and then head cost ~5 ms more a batch (64 px, 2 cores;
        # about 12 % of a one-pass prediction there).
        return head_samples(features(images), masks)

    @tf.function(input_signature=[images_spec], jit_compile=jit)
    def full(images):
        passes = [
            head(encoder(augment(images, training=True), training=False), training=True)
            for _ in range(n_samples)
        ]
        return tf.stack(passes, axis=1)

    if mc_mode == "full":
        return {"full": full}
    return {"features": features, "head": head_samples, "sample": sample}


def reseed(model, seed: int) -> None:
    """Restart the model's random streams (dropout masks, test-time augmentation) from `seed`.

    Keras layers draw from their own SeedGenerator state variables, set when the model was
    built or loaded; global seeding does not reach them. Each generator gets a distinct start.
    """
    states = [v for v in model.variables if v.path.endswith(SEED_STATE_SUFFIX)]
    starts = np.random.SeedSequence(seed).generate_state(len(states))
    for state, start in zip(states, starts, strict=True):
        state.assign(np.array([start, 0], dtype=state.dtype))
