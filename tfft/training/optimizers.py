"""AdamW for fine-tuning: decoupled weight decay that skips LayerNorm and biases, warmup schedule,
global-norm clipping, gradient accumulation and loss scaling, correct under `tf.distribute`.

Keras 3's own `AdamW` does most of this; tfft's subclass fixes three things that matter for
fine-tuning with `tf.distribute.MirroredStrategy` (checked by tests/training):

- gradients are summed across replicas *before* clipping, so the global norm is the norm of the
  global-batch gradient (Keras clips each replica's partial gradient);
- gradient accumulation runs its `cond` in cross-replica context (Keras's
  `gradient_accumulation_steps` raises a `merge_call` error under `MirroredStrategy`), and the
  schedule counts optimizer updates, not micro-batches;
- the gradient's global norm before clipping is kept in `optimizer.gradient_norm`, which
  `tfft.training.TensorBoard` logs, so a task model needs no code of its own for it.
"""

import keras
import tensorflow as tf
from keras import ops

from tfft.training.schedules import warmup_schedule


def _densify(grad):
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def _sum_across_replicas(grads):
    """All-reduces the non-None gradients in replica context; a no-op with one replica."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(grads)
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, [_densify(grads[i]) for i in present])
    out = list(grads)
    for i, g in zip(present, reduced):
        out[i] = g
    return out


@keras.saving.register_keras_serializable(package="tfft")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with replica-correct clipping and accumulation (see the module doc).

    Args:
        accumulation_steps: apply one update every `accumulation_steps` calls, with the mean of
            their gradients (1: every call).
        **kwargs: as `keras.optimizers.AdamW` (`global_clipnorm` clips by global norm);
            Keras's own `gradient_accumulation_steps` is refused, use `accumulation_steps`.
    """

    def __init__(self, *args, accumulation_steps=1, **kwargs):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError("use accumulation_steps, not gradient_accumulation_steps, with tfft's AdamW")
        super().__init__(*args, **kwargs)
        if int(accumulation_steps) < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps!r}")
        self.accumulation_steps = int(accumulation_steps)
        # Set by tfft's LossScaleOptimizer, which sums the gradients across replicas itself.
        self.gradients_reduced_by_caller = False
        self._find_no_decay_variables = None

    def exclude_from_weight_decay_of(self, model):
        """Skips weight decay on `model`'s normalization gamma/beta and biases (found at build,
        when the model is built)."""
        self._find_no_decay_variables = lambda: no_decay_variables(model)

    def build(self, variables):
        if self._find_no_decay_variables is not None:
            self.exclude_from_weight_decay(var_list=self._find_no_decay_variables())
        super().build(variables)
        # The norm and the micro-step count are the same on every replica (they come from
        # all-reduced gradients), so the first replica's value is the value.
        self.gradient_norm = self.add_variable(
            (), dtype="float32", aggregation="only_first_replica", name="gradient_norm"
        )
        if self.accumulation_steps > 1:
            self.micro_steps = self.add_variable((), dtype="int", aggregation="only_first_replica", name="micro_steps")
            self._accumulators = [
                self.add_variable_from_reference(variable, name="gradient_accumulator") for variable in variables
            ]

    def apply(self, grads, trainable_variables=None):
        if not self.built and trainable_variables is not None:
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
        # Dense gradients: Keras's global norm squares IndexedSlices values without summing
        # duplicate indices first, which understates an embedding's norm when a token repeats.
        grads = [_densify(g) for g in grads]
        if not self.gradients_reduced_by_caller:
            grads = _sum_across_replicas(grads)
        if self.accumulation_steps == 1:
            return super().apply(grads, trainable_variables)
        variables = list(trainable_variables) if trainable_variables is not None else self._trainable_variables
        tf.distribute.get_replica_context().merge_call(self._accumulate_or_update, args=(grads, variables))

    def _accumulate_or_update(self, distribution, grads, variables):
        """Cross-replica: add to the accumulators, or on every k-th call apply their mean."""
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        accumulators = [self._accumulators[self._get_variable_index(v)] for _, v in pairs]
        steps = self.accumulation_steps

        def accumulate():
            for (grad, _), accumulator in zip(pairs, accumulators):
                distribution.extended.update(
                    accumulator.value,
                    lambda acc, g: acc.assign_add(tf.cast(_densify(g), acc.dtype)),
                    args=(grad,),
                    group=False,
                )

        def update():
            def replica_update(pair_grads):
                mean = [(_densify(g) + acc.value) / steps for g, acc in zip(pair_grads, accumulators)]
                keras.optimizers.AdamW.apply(self, mean, [v for _, v in pairs])

            distribution.extended.call_for_each_replica(replica_update, args=([g for g, _ in pairs],))
            for accumulator in accumulators:
                distribution.extended.update(accumulator.value, lambda acc: acc.assign(tf.zeros_like(acc)), group=False)

        ops.cond(ops.equal((self.micro_steps + 1) % steps, 0), update, accumulate)
        self.micro_steps.assign_add(1)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # Already summed in apply() (or by the caller).

    def _clip_gradients(self, grads):
        present = [g for g in grads if g is not None]
        if not present:
            return grads
        norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(ops.cast(_densify(g), "float32"))) for g in present])))
        self.gradient_norm.assign(norm)
        if not self.global_clipnorm:
            return super()._clip_gradients(grads)  # clipnorm / clipvalue, or nothing
        # The norm just computed, not a second pass over every gradient as Keras would make; a
        # non-finite norm makes every gradient NaN, as in `clip_by_global_norm`.
        scale = ops.minimum(1.0, self.global_clipnorm / ops.maximum(norm, 1e-12)) + (norm - norm)
        return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]

    def get_config(self):
        return {**super().get_config(), "accumulation_steps": self.accumulation_steps}


@keras.saving.register_keras_serializable(package="tfft")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Dynamic loss scaling for `mixed_float16` around tfft's `AdamW`.

    Sums the scaled gradients across replicas before the finiteness check, so every replica
    takes the same branch (Keras checks only the first replica's partial gradient).
    """

    def __init__(self, inner_optimizer, **kwargs):
        if not isinstance(inner_optimizer, AdamW):
            raise TypeError(
                f"tfft's LossScaleOptimizer wraps tfft.training.AdamW, got {type(inner_optimizer).__name__}"
            )
        super().__init__(inner_optimizer, **kwargs)
        inner_optimizer.gradients_reduced_by_caller = True

    def apply(self, grads, trainable_variables=None):
        super().apply(_sum_across_replicas(list(grads)), trainable_variables)

    @property
    def gradient_norm(self):
        return self.inner_optimizer.gradient_norm


# Weight decay skips these layers' weights and every variable keras names "bias".
_NORM_LAYERS = (keras.layers.LayerNormalization, keras.layers.RMSNormalization, keras.layers.BatchNormalization)


def no_decay_variables(model):
    """The model's trainable variables that weight decay skips: normalization gamma/beta and every bias."""
    unbuilt = [layer.name for layer in model._flatten_layers(include_self=False) if not layer.built]
    if unbuilt:
        raise ValueError(
            f"build the model before the optimizer (call it on a batch); unbuilt layers: {', '.join(unbuilt[:5])}"
        )
    excluded = {id(w) for layer in model._flatten_layers() if isinstance(layer, _NORM_LAYERS) for w in layer.weights}
    return [w for w in model.trainable_weights if id(w) in excluded or w.name == "bias"]


def uses_float16(model):
    return any(getattr(layer.dtype_policy, "name", "") == "mixed_float16" for layer in model._flatten_layers())


def recommended_mixed_precision():
    """`"mixed_float16"` with a GPU (loss scaling needed), `"mixed_bfloat16"` on CPU or TPU."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def create_optimizer(
    model,
    learning_rate,
    total_steps,
    *,
    warmup_steps=None,
    warmup_ratio=0.0,
    decay="linear",
    weight_decay=0.01,
    clip_global_norm=1.0,
    accumulation_steps=1,
    mixed_precision=None,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
):
    """The fine-tuning optimizer: AdamW with a warmup schedule, built for `model`.

    Weight decay (decoupled, `variable -= lr * weight_decay * variable`) skips every
    normalization gamma/beta and every bias, as transformers' Trainer does; they are found when
    the optimizer is built (the first `fit` step), so the model may still be unbuilt here.
    Create the optimizer inside `strategy.scope()` when training with a distribution strategy.

    Example:
        >>> optimizer = create_optimizer(model, 2e-5, total_steps=epochs * steps_per_epoch, warmup_ratio=0.1)
        >>> model.compile(optimizer=optimizer, loss=...)

    Args:
        model: the Keras model to train.
        learning_rate: peak learning rate, reached at the end of warmup.
        total_steps: number of optimizer updates of the whole run (batches / accumulation_steps).
        warmup_steps: updates of linear warmup; overrides `warmup_ratio`.
        warmup_ratio: warmup as a fraction of `total_steps` (rounded up).
        decay: "linear" or "cosine" decay to 0 at `total_steps`.
        weight_decay: decoupled weight decay rate (0 or None: none).
        clip_global_norm: clip the gradient to this global norm (None: no clipping).
        accumulation_steps: micro-batches averaged into each update.
        mixed_precision: "mixed_float16" wraps the optimizer in dynamic loss scaling; None
            infers it from the model's layers; "mixed_bfloat16" or "float32" need none.
    Returns:
        `tfft.training.AdamW`, or `tfft.training.LossScaleOptimizer` around it for float16.
    """
    schedule = warmup_schedule(learning_rate, total_steps, warmup_steps, warmup_ratio, decay)
    optimizer = AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay or 0.0,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        global_clipnorm=clip_global_norm,
        accumulation_steps=accumulation_steps,
    )
    if weight_decay:
        optimizer.exclude_from_weight_decay_of(model)
    if mixed_precision is None and uses_float16(model):
        mixed_precision = "mixed_float16"
    if mixed_precision == "mixed_float16":
        return LossScaleOptimizer(optimizer)
    return optimizer
