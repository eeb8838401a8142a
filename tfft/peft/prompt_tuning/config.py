"""`PromptTuningConfig`: Hugging Face PEFT's prompt-tuning fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.virtual_tokens import PromptLearningConfig

INITS = ("RANDOM", "SAMPLE_VOCAB", "TEXT")


@dataclasses.dataclass
class PromptTuningConfig(PromptLearningConfig):
    """Prompt tuning (Lester et al., 2021): `num_virtual_tokens` trained embeddings placed before
    the word embeddings; position and token-type embeddings and the embeddings' LayerNorm apply to
    them as to words.

    Example:
        >>> model.add_adapter("prompt", PromptTuningConfig(num_virtual_tokens=8, prompt_tuning_init="TEXT",
        ...                                                prompt_tuning_init_text="Is this review positive?"))
    """

    method = "prompt_tuning"
    peft_type = "PROMPT_TUNING"

    prompt_tuning_init: str = field(
        "RANDOM", choices=INITS,
        help="RANDOM: N(0, 1) prompts; SAMPLE_VOCAB: the embeddings of random vocabulary tokens; TEXT: those of "
             "prompt_tuning_init_text's tokens (special tokens included, as peft), repeated or cut to "
             "num_virtual_tokens.")
    prompt_tuning_init_text: str | None = field(None, help="The text of the TEXT initialization.")
    tokenizer_name_or_path: str | None = field(
        None, help="The tokenizer of the TEXT initialization; default the model's own (model.tokenizer), "
                   "whose directory is then recorded here (peft's files need it for TEXT).")
    tokenizer_kwargs: dict | None = field(None, help="Keyword arguments for loading tokenizer_name_or_path "
                                                     "(TEXT only).")

    def check(self, source="peft"):
        super().check(source)
        if self.prompt_tuning_init not in INITS:
            raise ConfigError(f"{source}: 'peft.prompt_tuning_init' must be one of {list(INITS)}, "
                              f"got {self.prompt_tuning_init!r}")
        if self.prompt_tuning_init == "TEXT" and not (isinstance(self.prompt_tuning_init_text, str)
                                                      and self.prompt_tuning_init_text.strip()):
            raise ConfigError(f"{source}: 'peft.prompt_tuning_init_text' must be a non-empty text when "
                              f"prompt_tuning_init is TEXT, got {self.prompt_tuning_init_text!r}")
        if self.tokenizer_kwargs and self.prompt_tuning_init != "TEXT":
            raise ConfigError(f"{source}: 'peft.tokenizer_kwargs' is only used with prompt_tuning_init TEXT")
