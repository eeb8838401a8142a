"""`TaskModel`: what every tfft task model (an encoder plus a head) shares.

An encoder, a tokenizer attached for raw-text prediction and export, and Keras saving: the
config holds the encoder and the head's own fields (`head_config`), and the tokenizer files
travel inside the `.keras` archive.
"""

from pathlib import Path

import keras


class TaskModel(keras.Model):
    """Base of `SequenceClassifier`, `TokenClassifier` and `QuestionAnswerer`.

    A subclass calls `super().__init__(encoder, **kwargs)` first and returns its constructor's
    other arguments from `head_config()`.
    """

    # Hugging Face PEFT's task_type, and the head's module paths (always in `modules_to_save`).
    peft_task_type = ""
    peft_head_modules = ()

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.tokenizer = None  # attached by from_pretrained; used by raw-text prediction and export
        self._adapters = None  # tfft.peft.model.Adapters once an adapter is added

    def head_config(self) -> dict:
        raise NotImplementedError

    def output_layer(self, units, name):
        """The head's Dense output layer, built, initialized as transformers initializes heads."""
        config = self.encoder.config
        layer = keras.layers.Dense(units, name=name, dtype=self.dtype_policy,
                                   kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range))
        layer.build((None, config.hidden_size))
        return layer

    def hf_weight_table(self):
        """`{hf_tensor_name: (variable, transpose)}` in the layout of the transformers class the
        model saves as; PEFT names modules by it."""
        raise NotImplementedError

    # --- parameter-efficient fine-tuning (tfft.peft) --------------------------------------------

    def add_adapter(self, name, config):
        """Adds a PEFT adapter (a `tfft.peft` config, or a dict with `method`) and freezes the base.

        The first adapter becomes the active one. Only the active adapter's weights (and its
        copy of the task head) train. Returns the config with its defaults resolved.

        Example:
            >>> from tfft.peft import LoraConfig
            >>> model.add_adapter("sentiment", LoraConfig(r=8, lora_alpha=16))
            >>> model.print_trainable_parameters()
            >>> model.compile(optimizer=...); model.fit(...)
            >>> model.save_adapter("adapters/sentiment")
        """
        from tfft.peft.model import Adapters

        if self._adapters is None:
            self._adapters = Adapters(self)
        return self._adapters.add(name, config)

    def load_adapter(self, directory, name="default"):
        """Adds the adapter saved in `directory` (by tfft or by Hugging Face PEFT) under `name`."""
        from tfft.peft.files import load_adapter_tensors, read_adapter_config

        from tfft.peft.model import Adapters

        config, _ = read_adapter_config(directory)
        if self._adapters is None:
            self._adapters = Adapters(self)
        adapters = self._adapters
        merged = adapters.merged
        adapters.unmerge()  # a trained bias is read against the base's own bias
        config = adapters.add(name, config, source=str(directory), from_file=True)
        try:
            load_adapter_tensors(adapters, directory, name)
        except Exception:
            self.delete_adapter(name)  # nothing half-loaded stays on the model
            raise
        finally:
            if merged:
                adapters.merge()
        return config

    def save_adapter(self, directory, name=None, base_model_name_or_path=None):
        """Writes adapter `name` (default the active one) in Hugging Face PEFT's format: only its
        own weights and config, never the base model's. `base_model_name_or_path` is recorded in
        adapter_config.json (default the checkpoint the encoder was loaded from)."""
        from tfft.peft.files import save_adapter
        from tfft.peft.model import adapters_of

        adapters = adapters_of(self)
        name = name or adapters.active
        adapters._require(name)
        if base_model_name_or_path is None and self.encoder.loading_report is not None:
            base_model_name_or_path = self.encoder.loading_report.checkpoint
        merged = adapters.merged
        adapters.unmerge()
        try:
            return save_adapter(adapters, directory, name, base_model_name_or_path)
        finally:
            if merged:
                adapters.merge()

    def set_adapter(self, name):
        """Makes adapter `name` the active one (the others stay on the model, inactive)."""
        from tfft.peft.model import adapters_of

        adapters_of(self).set_active(name)

    def delete_adapter(self, name):
        """Removes adapter `name`; without adapters left the base model trains in full again."""
        from tfft.peft.model import adapters_of

        adapters_of(self).delete(name)

    def disable_adapters(self):
        """A context manager: inside it the model is the base model, exactly.

            >>> with model.disable_adapters():
            ...     base_logits = model(batch)
        """
        from tfft.peft.model import adapters_of

        return adapters_of(self).disabled()

    def merge_adapter(self):
        """Folds the active adapter into the base weights (no extra inference cost); `unmerge_adapter` undoes it."""
        from tfft.peft.model import adapters_of

        adapters_of(self).merge()

    def unmerge_adapter(self):
        from tfft.peft.model import adapters_of

        adapters_of(self).unmerge()

    def merge_and_unload(self):
        """Merges the active adapter for good and removes the adapters: a plain model, for export."""
        from tfft.peft.model import adapters_of

        adapters_of(self).merge_and_unload()
        self._adapters = None
        return self

    def fold_adapters(self):
        """The model for inference and export: a mergeable adapter (LoRA, AdaLoRA, IA3, BitFit) is
        merged for good and unloaded, as `merge_and_unload`; one that cannot merge (bottleneck
        adapters, prefix and prompt tuning) stays in the graph as the only, active adapter."""
        from tfft.peft.model import adapters_of

        adapters = adapters_of(self)
        adapters.fold()
        if not adapters.configs:
            self._adapters = None
        return self

    @property
    def active_adapter(self):
        return None if self._adapters is None else self._adapters.active

    @property
    def peft_config(self):
        """`{adapter name: config}`, as in peft."""
        return {} if self._adapters is None else dict(self._adapters.configs)

    def trainable_parameters(self):
        """Parameter counts: `trainable`, `total`, and with an adapter `adapter` (the method's own),
        `head` (the task head's copy) and `encoder` (the encoder's parameters)."""
        from tfft.peft.model import _count

        if self._adapters is not None and self._adapters.active is not None:
            counts = self._adapters.parameter_counts()
        else:
            counts = {"trainable": _count(self.trainable_weights), "total": _count(self.weights)}
        counts["encoder"] = _count([v for v in self.encoder.weights if not _is_adapter_variable(self, v)])
        return counts

    def print_trainable_parameters(self):
        """Prints peft's line (trainable, all, %) and, with an adapter, its share of the encoder."""
        counts = self.trainable_parameters()
        print(f"trainable params: {counts['trainable']:,d} || all params: {counts['total']:,d} || "
              f"trainable%: {100 * counts['trainable'] / counts['total']:.4f}")
        if "adapter" in counts:
            print(f"adapter params: {counts['adapter']:,d} ({100 * counts['adapter'] / counts['encoder']:.4f}% of the "
                  f"encoder's {counts['encoder']:,d}) + task head: {counts['head']:,d}")

    # --- transformers checkpoints -------------------------------------------------------------

    def per_token_head_weights(self, head):
        """`{hf_tensor_name: (variable, transpose)}` in the layout of transformers' per-token heads
        (`*ForTokenClassification`, `*ForQuestionAnswering`): the encoder under its `base_prefix`,
        no pooler, and the `head` Dense layer under its own name."""
        from tfft.encoders.encoder import dense_weights

        encoder = self.encoder
        table = {f"{encoder.base_prefix}.{name}": entry for name, entry in encoder.weight_map().items()
                 if not encoder.is_head_tensor(name)}
        table.update(dense_weights(head.name, head))
        return table

    def write_pretrained(self, save_dir, hf_config, weight_map):
        """Writes config.json, model.safetensors (tensors named by `weight_map`) and the tokenizer files."""
        from tfft.encoders.encoder import hf_tensors
        from tfft.weights import save_state_dict, write_json_atomic

        if self._adapters is not None and self._adapters.configs:
            raise ValueError("this model has PEFT adapters: save_adapter(directory) writes an adapter; "
                             "merge_and_unload() first makes the plain merged model that save_pretrained writes")

        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        save_state_dict(hf_tensors(weight_map), save_dir / "model.safetensors")
        write_json_atomic(hf_config, save_dir / "config.json")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_dir)
        return save_dir

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            **self.head_config(),
        }
        if self._adapters is not None and self._adapters.configs:
            adapters = self._adapters
            config["adapters"] = {"configs": {name: c.to_dict() for name, c in adapters.configs.items()},
                                  "active": adapters.active, "merged": adapters.merged}
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        adapters = config.pop("adapters", None)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        model = cls(**config)
        if adapters:
            from tfft.peft.model import Adapters

            # The same adapters, so the saved weights (merged into the base or not) load back.
            model._adapters = Adapters(model)
            for name, adapter_config in adapters["configs"].items():
                model._adapters.add(name, adapter_config, initialize=False)
            model.set_adapter(adapters["active"])
            model._adapters.mark_merged(adapters["merged"])
        return model

    def fit(self, *args, callbacks=None, **kwargs):
        """Keras `fit`; with an adapter whose method needs callbacks of its own during training
        (AdaLoRA's rank allocation), they are added after `callbacks` unless one of their type is there."""
        optimizer = self.optimizer
        callbacks = list(callbacks or [])
        if self._adapters is not None:
            if optimizer is not None and optimizer.built:
                built_for = {id(v) for v in optimizer._trainable_variables}
                if built_for != {id(v) for v in self.trainable_variables}:
                    raise ValueError("the trainable variables changed since the optimizer was built (an adapter was "
                                     "added, switched or deleted): compile the model again with a new optimizer")
            given = {type(c) for c in callbacks}
            callbacks += [c for c in self._adapters.training_callbacks() if type(c) not in given]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def train_step(self, data):
        """Keras's train step. Where the running adapter has modules that watch the gradients
        (AdaLoRA's importance), the same step (forward under a tape, loss, loss scaling,
        gradients, optimizer update, metrics), after whose update each such module gets its
        gradients as the optimizer applies them: unscaled and summed across replicas, with
        `finite` false for a step that mixed float16 skips (its loss scale overflowed)."""
        observers = self._adapters.gradient_observers() if self._adapters is not None else []
        if not observers:
            return super().train_step(data)
        import tensorflow as tf
        from keras import ops
        from keras.src.losses.loss import unscale_loss_for_distribution

        from tfft.training.optimizers import _sum_across_replicas

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            batch_size = tf.shape(next(i for i in keras.tree.flatten(x) if i is not None))[0]
            self._loss_tracker.update_state(unscale_loss_for_distribution(loss), sample_weight=batch_size)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        scale = self.optimizer.scale_loss(ops.ones(()))  # read before the update, which may change it
        step = ops.convert_to_tensor(self.optimizer.iterations)  # the update's number, from 0
        watched = {id(v) for m in observers for v in m.trainable_weights}
        pairs = [(v, g / ops.cast(scale, g.dtype)) for v, g in zip(variables, grads) if id(v) in watched]
        observed = _sum_across_replicas([g for _, g in pairs])
        finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in [*grads, *observed] if g is not None]))
        self.optimizer.apply(grads, variables)
        gradients = {id(v): g for (v, _), g in zip(pairs, observed)}
        for module in observers:
            module.observe_gradients(gradients, step, finite)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def save_assets(self, dir_path):
        """Keras-format saving: the tokenizer files travel inside the `.keras` archive."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(dir_path)

    def load_assets(self, dir_path):
        from tfft.errors import TokenizerError
        from tfft.tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_pretrained(dir_path)
        except TokenizerError:
            self.tokenizer = None


def _is_adapter_variable(model, variable):
    if model._adapters is None:
        return False
    return any(variable is v for w in model._adapters.wrappers.values() for m in w.adapters.values() for v in m.weights)
