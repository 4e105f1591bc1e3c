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
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np

from gz_experiments.config import Sampling

# model -> {(n_samples, mc_mode): compiled functions}. Tracing EfficientNet takes seconds, so a
# served model must not retrace per request. Weak keys: a dropped model frees its entry.
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

    def __init__(self, model, sampling: Sampling):
        from gz_experiments.models import split_model

        self.model, self.sampling = model, sampling
        _, _, head = split_model(model)
        self.rate = float(head.get_layer("dropout").rate)
        self.width = int(head.input_shape[-1])
        self.functions = compiled(model, sampling.n_samples, sampling.mc_mode)
        self.reset()

    def reset(self) -> None:
        """Restart the model's generators from the seed (what "full" mode draws from)."""
        if self.sampling.mc_mode == "full":
            reseed(self.model, self.sampling.seed)

    def __call__(self, images: np.ndarray, ids: list[str]) -> np.ndarray:
        n = self.sampling.n_samples
        if self.sampling.mc_mode == "full":
            return self.functions["full"](images).numpy()
        features = self.functions["features"](images)
        masks = dropout_masks(ids, self.sampling.seed, n, self.width, self.rate)
        return self.functions["head"](features, masks).numpy()


def compiled(model, n_samples: int, mc_mode: str) -> dict:
    cache = _COMPILED.setdefault(model, {})
    if (n_samples, mc_mode) not in cache:
        cache[n_samples, mc_mode] = _compile(model, n_samples, mc_mode)
    return cache[n_samples, mc_mode]


def _compile(model, n_samples: int, mc_mode: str) -> dict:
    import tensorflow as tf

    from gz_experiments.models import split_model

    augment, encoder, head = split_model(model)
    logits, concentrations = head.get_layer("logits"), head.get_layer("concentrations")
    width = int(head.input_shape[-1])
    # A free batch dimension: one trace serves every batch, including the short last one.
    images_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[images_spec])
    def features(images):
        out = encoder(augment(images, training=False), training=False)
        return tf.cast(out, tf.float32)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, width), tf.float32),
            tf.TensorSpec((None, n_samples, width), tf.float32),
        ]
    )
    def head_samples(feats, masks):
        # The head's Dense + concentrations on masked copies of the features: the dropout layer
        # itself is replaced by the per-galaxy masks.
        dropped = tf.reshape(feats[:, None, :] * masks, (-1, width))
        alphas = concentrations(logits(dropped))
        return tf.reshape(alphas, (-1, n_samples, alphas.shape[-1]))

    @tf.function(input_signature=[images_spec])
    def full(images):
        passes = [
            head(encoder(augment(images, training=True), training=False), training=True)
            for _ in range(n_samples)
        ]
        return tf.stack(passes, axis=1)

    if mc_mode == "full":
        return {"full": full}
    return {"features": features, "head": head_samples}


def reseed(model, seed: int) -> None:
    """Restart the model's random streams (dropout masks, test-time augmentation) from `seed`.

    Keras layers draw from their own SeedGenerator state variables, set when the model was
    built or loaded; global seeding does not reach them. Each generator gets a distinct start.
    """
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    starts = np.random.SeedSequence(seed).generate_state(len(states))
    for state, start in zip(states, starts, strict=True):
        state.assign(np.array([start, 0], dtype=state.dtype))
