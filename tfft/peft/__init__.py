"""Parameter-efficient fine-tuning on every tfft task model: LoRA, AdaLoRA, IA3, BitFit,
bottleneck adapters (Houlsby, Pfeiffer, parallel), prefix tuning, prompt tuning and P-tuning.

    >>> from tfft.peft import LoraConfig
    >>> model = tfft.SequenceClassifier.from_pretrained("path/to/minilm", labels=["neg", "pos"])
    >>> model.add_adapter("sentiment", LoraConfig(r=8, lora_alpha=16))
    >>> model.print_trainable_parameters()
    trainable params: 74,498 || all params: 22,788,484 || trainable%: 0.3269
    >>> model.compile(optimizer=...); model.fit(train, ...)
    >>> model.save_adapter("adapters/sentiment")      # Hugging Face PEFT's files

A method is one folder here (`lora/`, `adalora/`, `ia3/`, `bitfit/`, `bottleneck/`,
`prefix_tuning/`, `prompt_tuning/`, `p_tuning/`) with its config and its layers, registered in
`tfft.peft.methods`. Modules are named as in transformers
(`bert.encoder.layer.0.attention.self.query`) so peft configs and files mean the same here.
Methods that change weights wrap Dense or LayerNorm layers (`wrapper.py`); prompt learning sits
in the encoder's virtual-token slot (`virtual_tokens.py`).
"""

from tfft.peft.adalora import AdaLoraCallback, AdaLoraConfig
from tfft.peft.bitfit import BitFitConfig
from tfft.peft.bottleneck import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig
from tfft.peft.config import PeftConfig, parse_peft_config
from tfft.peft.files import read_adapter_config
from tfft.peft.ia3 import IA3Config
from tfft.peft.lora import LoraConfig
from tfft.peft.methods import METHODS
from tfft.peft.p_tuning import PromptEncoderConfig
from tfft.peft.prefix_tuning import PrefixTuningConfig
from tfft.peft.prompt_tuning import PromptTuningConfig

__all__ = ["AdaLoraCallback", "AdaLoraConfig", "BitFitConfig", "HoulsbyConfig", "IA3Config", "LoraConfig", "METHODS",
           "ParallelAdapterConfig", "PeftConfig", "PfeifferConfig", "PrefixTuningConfig", "PromptEncoderConfig",
           "PromptTuningConfig", "parse_peft_config", "read_adapter_config"]
