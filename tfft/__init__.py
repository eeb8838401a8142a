"""tfft: fine-tune pretrained transformer encoders with TensorFlow and Keras 3.

    >>> import tfft
    >>> encoder = tfft.Encoder.from_pretrained("path/to/checkpoint")
    >>> tokenizer = tfft.Tokenizer.from_pretrained("path/to/checkpoint")
    >>> outputs = encoder(tokenizer(["A first sentence.", "Another one."]))

Public names are imported on first use, so `import tfft` (and `tfft --help`) stays fast.
Importing tfft on a CPU with AVX-512 asks XLA for 512-bit vector code (see `tfft._xla`;
`TFFT_XLA_CPU_TUNING=0` turns that off).
"""

from tfft._lazy import lazy_getattr

from tfft._xla import tune_cpu_codegen

__version__ = "0.1.0"

tune_cpu_codegen()

_EXPORTS = {
    "Encoder": "tfft.encoders",
    "EncoderConfig": "tfft.encoders",
    "Tokenizer": "tfft.tokenizers",
    "SequenceClassifier": "tfft.tasks",
    "TokenClassifier": "tfft.tasks",
    "QuestionAnswerer": "tfft.tasks",
    "export_saved_model": "tfft.export",
    "export_onnx": "tfft.export",
    "TfftError": "tfft.errors",
    "CheckpointError": "tfft.errors",
    "TokenizerError": "tfft.errors",
    "ConfigError": "tfft.errors",
    "DataError": "tfft.errors",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("tfft", _EXPORTS)


def __dir__():
    return sorted(list(globals()) + __all__)
