"""`EncoderConfig`: the architecture hyperparameters every tfft encoder is built from."""

import dataclasses
import json
from pathlib import Path

from tfft._transformers import import_transformers
from tfft.errors import CheckpointError


@dataclasses.dataclass
class EncoderConfig:
    """Hyperparameters of a transformer encoder, in one vocabulary for all architectures.

    Each architecture maps these fields to and from its Hugging Face `config.json` keys
    (`Encoder.hf_config_keys`); `hf_config` keeps the whole original file so that
    `save_pretrained` writes back every key transformers expects.
    """

    model_type: str = dataclasses.field(metadata={"help": "Hugging Face model_type, e.g. 'bert'."})
    vocab_size: int = dataclasses.field(default=30522, metadata={"help": "Rows of the word-embedding table."})
    hidden_size: int = dataclasses.field(default=768, metadata={"help": "Width of every hidden state."})
    num_layers: int = dataclasses.field(default=12, metadata={"help": "Number of transformer blocks."})
    num_heads: int = dataclasses.field(default=12, metadata={"help": "Attention heads per block."})
    intermediate_size: int = dataclasses.field(default=3072, metadata={"help": "Feed-forward inner width."})
    hidden_act: str = dataclasses.field(default="gelu", metadata={"help": "Feed-forward activation (HF name)."})
    hidden_dropout: float = dataclasses.field(default=0.1, metadata={"help": "Dropout on hidden states."})
    attention_dropout: float = dataclasses.field(default=0.1, metadata={"help": "Dropout on attention weights."})
    max_position_embeddings: int = dataclasses.field(default=512, metadata={"help": "Rows of the position table."})
    type_vocab_size: int = dataclasses.field(default=2, metadata={"help": "Token types; 0 means none."})
    layer_norm_eps: float = dataclasses.field(default=1e-12, metadata={"help": "LayerNorm epsilon."})
    pad_token_id: int = dataclasses.field(default=0, metadata={"help": "Id of the padding token."})
    initializer_range: float = dataclasses.field(default=0.02, metadata={"help": "Stddev of weight init."})
    embedding_size: int | None = dataclasses.field(
        default=None, metadata={"help": "Embedding width when it differs from hidden_size (ALBERT, ELECTRA)."}
    )
    num_hidden_groups: int = dataclasses.field(default=1, metadata={"help": "ALBERT: groups of shared layers."})
    inner_group_num: int = dataclasses.field(default=1, metadata={"help": "ALBERT: layers inside each group."})
    hf_config: dict = dataclasses.field(
        default_factory=dict, repr=False, metadata={"help": "The full Hugging Face config this came from."}
    )

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown EncoderConfig keys: {', '.join(unknown)}")
        return cls(**values)


def read_hf_config(model_dir):
    """Reads `config.json` from a checkpoint directory, with transformers' defaults filled in."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {model_dir}: a Hugging Face checkpoint directory needs one")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise CheckpointError(f"{path} has no 'model_type' key, so tfft cannot tell the architecture")
    return complete_hf_config(raw, source=path)


def complete_hf_config(raw, source="config"):
    """Fills in the defaults transformers' config class for `raw['model_type']` would use."""
    config_classes = import_transformers().CONFIG_MAPPING
    if raw["model_type"] not in config_classes:
        return dict(raw)
    try:
        return config_classes[raw["model_type"]].from_dict(raw).to_dict()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: transformers cannot read this config: {e}") from None
