"""One SGD step on one CPU device vs two mirrored CPU replicas; prints replicas and the difference.

Run by tests/test_train.py in its own process: logical devices must be set before TF starts.
"""

import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from gz_experiments.losses import concentrations_from_logits, loss_for  # noqa: E402
from gz_experiments.schema import get_schema  # noqa: E402

SCHEMA = get_schema("gzd5")
rng = np.random.default_rng(0)
X = rng.random((8, 5), dtype=np.float32)
Y = rng.integers(0, 6, (8, SCHEMA.n_answers)).astype(np.float32)


def weight_update(strategy: tf.distribute.Strategy) -> np.ndarray:
    with strategy.scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((5,))
        outputs = keras.layers.Dense(SCHEMA.n_answers, activation=concentrations_from_logits)(
            inputs
        )
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss_for(SCHEMA))
    before = model.get_weights()[0].copy()
    model.fit(tf.data.Dataset.from_tensor_slices((X, Y)).batch(8), epochs=1, verbose=0)
    return model.get_weights()[0] - before


single = weight_update(tf.distribute.get_strategy())
mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored = weight_update(mirrored_strategy)
difference = np.abs(single - mirrored).max() / np.abs(single).max()
print(mirrored_strategy.num_replicas_in_sync, f"{difference:.3g}")
