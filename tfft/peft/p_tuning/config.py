"""`PromptEncoderConfig`: Hugging Face PEFT's P-tuning fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.config import positive_int
from tfft.peft.virtual_tokens import PromptLearningConfig

ENCODERS = ("MLP", "LSTM")


@dataclasses.dataclass
class PromptEncoderConfig(PromptLearningConfig):
    """P-tuning (Liu et al., 2021): soft prompts placed before the word embeddings, computed from a
    trained embedding by peft's prompt encoder (an MLP, or a bidirectional LSTM and an MLP). The
    file holds the prompts it gives.

    Example:
        >>> model.add_adapter("p", PromptEncoderConfig(num_virtual_tokens=8, encoder_hidden_size=128))
    """

    method = "p_tuning"
    peft_type = "P_TUNING"

    encoder_reparameterization_type: str = field(
        "MLP", choices=ENCODERS,
        help="MLP: Linear-ReLU-Linear-ReLU-Linear; LSTM: a bidirectional LSTM, then Linear-ReLU-Linear.")
    encoder_hidden_size: int | None = field(None, help="Hidden width of the prompt encoder; default token_dim.")
    encoder_num_layers: int = field(2, help="LSTM layers (the MLP always has 3 Linear layers, as in peft).")
    encoder_dropout: float = field(0.0, help="Dropout between the LSTM's layers.")

    def check(self, source="peft"):
        super().check(source)
        if self.encoder_reparameterization_type not in ENCODERS:
            raise ConfigError(f"{source}: 'peft.encoder_reparameterization_type' must be one of {list(ENCODERS)}, "
                              f"got {self.encoder_reparameterization_type!r}")
        if self.encoder_hidden_size is not None:
            positive_int(self.encoder_hidden_size, "peft.encoder_hidden_size", source)
        positive_int(self.encoder_num_layers, "peft.encoder_num_layers", source)
        if not (isinstance(self.encoder_dropout, (int, float)) and 0.0 <= self.encoder_dropout < 1.0):
            raise ConfigError(f"{source}: 'peft.encoder_dropout' must be in [0, 1), got {self.encoder_dropout!r}")
