"""Errors a user can cause. Each names the file, tensor or key at fault."""


class TfftError(Exception):
    """Base class for tfft's user-facing errors."""


class CheckpointError(TfftError):
    """A checkpoint directory, config.json or weights file is missing, unreadable or inconsistent."""


class TokenizerError(TfftError):
    """Tokenizer files are missing, or a tokenizer cannot be expressed in-graph exactly."""


class DataError(TfftError):
    """A data file or dataset is missing, malformed, or has a bad row, column or label; names the file and line."""


class ConfigError(TfftError):
    """A run config has an unknown key, a wrong type or a bad value; names the file and key."""
