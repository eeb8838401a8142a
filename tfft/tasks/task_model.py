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

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.tokenizer = None  # attached by from_pretrained; used by raw-text prediction and export

    def head_config(self) -> dict:
        raise NotImplementedError

    def output_layer(self, units, name):
        """The head's Dense output layer, built, initialized as transformers initializes heads."""
        config = self.encoder.config
        layer = keras.layers.Dense(units, name=name, dtype=self.dtype_policy,
                                   kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range))
        layer.build((None, config.hidden_size))
        return layer

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

        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        save_state_dict(hf_tensors(weight_map), save_dir / "model.safetensors")
        write_json_atomic(hf_config, save_dir / "config.json")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_dir)
        return save_dir

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            **self.head_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)

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
