"""Errors a user can cause. Each names the file, tensor or key at fault."""


class TfftError(Exception):
    """Base class for tfft's user-facing errors. `tfft` prints one `tfft: error:` line and exits
    with `exit_code`: 2, bad input, unless a subclass says otherwise."""

    exit_code = 2


class CheckpointError(TfftError):
    """A checkpoint directory, config.json or weights file is missing, unreadable or inconsistent."""


class TokenizerError(TfftError):
    """Tokenizer files are missing, or a tokenizer cannot be expressed in-graph exactly."""


class DataError(TfftError):
    """A data file or dataset is missing, malformed, or has a bad row, column or label; names the file and line."""


class ConfigError(TfftError):
    """A run config has an unknown key, a wrong type or a bad value; names the file and key."""
