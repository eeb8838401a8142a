"""`TaskModel`: what every tfft task model (an encoder plus a head) shares.

An encoder, a tokenizer attached for raw-text prediction and export, and Keras saving: the
config holds the encoder and the head's own fields (`head_config`), and the tokenizer files
travel inside the `.keras` archive.
"""

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
