"""The per-request limits of `tfft serve` (`Limits`), apart so the CLI can read their defaults and
help without importing numpy or the server."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; each field is a `tfft serve` option."""

    max_body_bytes: int = field(default=1 << 20, metadata={
        "help": "largest request body in bytes; a larger one gets 413"})
    max_batch_size: int = field(default=64, metadata={
        "help": "most examples in one request; more get 413 (split the request)"})
    max_text_chars: int = field(default=4000, metadata={
        "help": "longest text (any string sent as JSON text) in characters; a longer one gets 400. Binary values "
                "({\"b64\": ...}, V2 binary data) are bounded by --max-body-bytes only"})
    timeout: float = field(default=30.0, metadata={
        "help": "seconds a request may take, waiting for a free inference thread included; then 504"})
    max_sequence_length: int | None = field(default=None, metadata={
        "help": "longest row of an integer [batch, seq] input such as input_ids (default: max_length in the "
                "export's tfft_metadata.json)"})
