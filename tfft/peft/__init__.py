"""Parameter-efficient fine-tuning: LoRA, IA3 and BitFit on every tfft task model.

    >>> from tfft.peft import LoraConfig
    >>> model = tfft.SequenceClassifier.from_pretrained("path/to/minilm", labels=["neg", "pos"])
    >>> model.add_adapter("sentiment", LoraConfig(r=8, lora_alpha=16))
    >>> model.print_trainable_parameters()
    trainable params: 74,498 || all params: 22,788,484 || trainable%: 0.3269
    >>> model.compile(optimizer=...); model.fit(train, ...)
    >>> model.save_adapter("adapters/sentiment")      # Hugging Face PEFT's files

A method is one folder here (`lora/`, `ia3/`, `bitfit/`) with its config and its layers,
registered in `tfft.peft.methods`. Modules are named as in transformers
(`bert.encoder.layer.0.attention.self.query`) so peft configs and files mean the same here.
"""

from tfft.peft.bitfit import BitFitConfig
from tfft.peft.config import PeftConfig, parse_peft_config
from tfft.peft.files import read_adapter_config
from tfft.peft.ia3 import IA3Config
from tfft.peft.lora import LoraConfig
from tfft.peft.methods import METHODS

__all__ = ["BitFitConfig", "IA3Config", "LoraConfig", "METHODS", "PeftConfig", "parse_peft_config",
           "read_adapter_config"]
