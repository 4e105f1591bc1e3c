"""Adam with a learning-rate factor per variable: layer-wise learning-rate decay for finetuning.

    optimizer = LayerwiseAdam(lr_multipliers(model, "small_cnn", 0.75), learning_rate=1e-3)

Scaling the gradients instead would do nothing: Adam divides each update by the gradient's own
running scale. Keras 3 has no per-variable learning rate, so `update_step` (called once per
variable with the current learning rate) multiplies it by that variable's factor. Factors are a
list in the order of `model.trainable_variables`, the list Keras builds the optimizer with;
they are part of the optimizer's config, so a checkpoint (`last.keras`) resumes with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


@keras.saving.register_keras_serializable(package="gz_experiments")
class LayerwiseAdam(keras.optimizers.Adam):
    """Adam whose learning rate for trainable variable i is `learning_rate * multipliers[i]`."""

    def __init__(self, multipliers: Sequence[float] = (), **kwargs):
        super().__init__(**kwargs)
        self.multipliers = [float(m) for m in multipliers]

    def build(self, var_list):
        if len(var_list) != len(self.multipliers):
            raise ValueError(
                f"LayerwiseAdam has {len(self.multipliers)} learning-rate factors for "
                f"{len(var_list)} trainable variables: build it from the compiled model's "
                f"trainable_variables"
            )
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        factor = self.multipliers[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate * factor)

    def get_config(self):
        return {**super().get_config(), "multipliers": self.multipliers}
