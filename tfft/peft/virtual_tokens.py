"""What prefix tuning, prompt tuning and P-tuning share: their config fields, the base of their
modules, and `VirtualTokens`, the encoder's slot that holds them.

These methods change the attention inputs instead of a layer's weights. Prompt tuning and
P-tuning place `num_virtual_tokens` soft prompts before the word embeddings; prefix tuning gives
every layer keys and values for `num_virtual_tokens` more positions. The encoder asks its
`virtual_tokens` slot for the running adapter's (`tfft.encoders.Encoder.call`); the virtual tokens
are always visible, and the encoder's per-token outputs are the real tokens' only.

Files are peft's: one top-level tensor `prompt_embeddings` ([n, token_dim] prompts, or the prefix
table [n, num_layers * 2 * hidden_size]) with any reparameterization (prefix_projection's MLP,
P-tuning's encoder) folded in, as peft saves it; the head copies under `base_model.<path>`.
"""

import dataclasses
import math

import keras
from keras import ops

from tfft.config import field
from tfft.errors import CheckpointError, ConfigError
from tfft.peft.config import PeftConfig, positive_int
from tfft.peft.wrapper import AdapterModule, _unlocked, assign_array, to_numpy

SLOT = "prompt_encoder"  # the slot's key among `Adapters.wrappers` (peft's attribute name)
TENSOR = "prompt_embeddings"


@dataclasses.dataclass
class PromptLearningConfig(PeftConfig):
    """Fields of peft's `PromptLearningConfig`. The encoder's sizes fill the ones left out."""

    is_prompt_learning = True
    mergeable = False
    peft_defaults = {"num_transformer_submodules": 1}

    num_virtual_tokens: int | None = field(None, help="Virtual tokens: soft prompts or key/value prefixes (required).")
    token_dim: int | None = field(None, help="Width of a virtual token: the word embeddings' for prompts, "
                                             "hidden_size for prefixes. Default (and it must be) the encoder's.")
    num_layers: int | None = field(None, help="Transformer layers. Default (and it must be) the encoder's.")
    num_attention_heads: int | None = field(None, help="Attention heads. Default (and it must be) the encoder's.")
    inference_mode: bool = field(
        False,
        help="The virtual tokens are one trained table, without the reparameterization (prefix_projection's "
             "MLP, P-tuning's encoder) and without initialization from the vocabulary: what an adapter "
             "file holds, so adapters read from files have it.",
    )

    def check(self, source="peft"):
        if self.num_virtual_tokens is None:
            raise ConfigError(f"{source}: 'peft.num_virtual_tokens' is required (a positive integer)")
        positive_int(self.num_virtual_tokens, "peft.num_virtual_tokens", source)
        for key in ("token_dim", "num_layers", "num_attention_heads"):
            if getattr(self, key) is not None:
                positive_int(getattr(self, key), f"peft.{key}", source)

    def resolved(self, source, model_name, **sizes):
        """The config with the encoder's `sizes` (token_dim, num_layers, num_attention_heads) filled
        in; one given otherwise is a ConfigError naming it."""
        for key, value in sizes.items():
            given = getattr(self, key)
            if given is not None and given != value:
                raise ConfigError(f"{source}: 'peft.{key}' is {given}, but this {model_name} has {value}")
        return dataclasses.replace(self, **sizes)


def torch_dense(units, fan_in, name, dtype, activation=None, zeros=False):
    """A Dense layer initialized as `torch.nn.Linear` (kernel and bias uniform in ±1/sqrt(fan_in)),
    as peft's reparameterization layers start, or at zero; built."""
    bound = 1.0 / math.sqrt(fan_in)

    def init():  # one each: an unseeded Keras initializer repeats its values
        return "zeros" if zeros else keras.initializers.RandomUniform(-bound, bound)

    layer = keras.layers.Dense(units, activation=activation, name=name, dtype=dtype, kernel_initializer=init(),
                               bias_initializer=init())
    layer.build((None, fan_in))
    return layer


class VirtualTokenModule(AdapterModule):
    """One prompt-learning adapter: an `embedding` table [n, width] (N(0, 1) at the start, as
    `torch.nn.Embedding`), maybe reparameterized by a subclass's `table()`.

    `prompts(batch, training)` gives the [batch, n, width] soft prompts (prompt tuning, P-tuning);
    prefix tuning's gives None and `prefixes(training)` per layer (keys, values) [heads, n,
    head_size] instead. In the adapter file the table is peft's `prompt_embeddings`.
    """

    merges_into_base = False  # it stays in the graph; merging leaves it running
    top_level_tensors = True  # `prompt_embeddings`, without a module path
    reparameterized = False  # True: `table()` computes the table from the embedding (not in the file)

    def __init__(self, num_virtual_tokens, width, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_virtual_tokens = num_virtual_tokens
        self.embedding = self.add_weight(shape=(num_virtual_tokens, width), name="embedding",
                                         initializer=initializer or keras.initializers.RandomNormal(stddev=1.0))
        self.built = True

    def table(self, training=False):
        """The virtual tokens [n, width] in the compute dtype."""
        return ops.cast(self.embedding, self.compute_dtype)

    def prompts(self, batch, training):
        table = self.table(training)
        return ops.broadcast_to(table[None], (batch, *table.shape))

    def prefixes(self, training):
        return None

    def merge(self, base):
        pass

    def unmerge(self, base):
        pass

    def hf_tensors(self, base):
        return {TENSOR: to_numpy(self.table(training=False) if self.reparameterized else self.embedding)}

    def assign_hf(self, base, tensors, prefix):
        if self.reparameterized:
            raise CheckpointError(f"adapter tensor '{prefix}{TENSOR}' is a trained table, which cannot be read into "
                                  "a reparameterized adapter: read it with inference_mode true, as files are")
        assign_array(self.embedding, tensors[TENSOR], prefix + TENSOR)


class VirtualTokens(keras.layers.Layer):
    """`encoder.virtual_tokens`: the encoder's prompt-learning adapters, one `VirtualTokenModule`
    per adapter name, of which the active one runs (`running()`). The counterpart of
    `tfft.peft.wrapper.AdaptedLayer` for methods that wrap no layer, with its interface."""

    base_layer = None  # no layer of the encoder is wrapped

    def __init__(self, **kwargs):
        super().__init__(name="virtual_tokens", **kwargs)
        self.adapters = {}
        self.active = None
        self.merged = None
        self.built = True

    def running(self):
        """The module the encoder runs, or None (the plain encoder)."""
        return self.adapters.get(self.active) if self.active is not None else None

    def add(self, name, module):
        with _unlocked(self):
            self.adapters[name] = module

    def remove(self, name):
        with _unlocked(self):
            self._tracker.untrack(self.adapters.pop(name))
        if self.active == name:
            self.active = None

    def merge(self, name):
        self.merged = name  # nothing folds into the base weights

    def unmerge(self):
        self.merged = None


def attach(encoder):
    """Gives `encoder` its (empty) `VirtualTokens` slot and returns it."""
    slot = VirtualTokens(dtype=encoder.dtype_policy)
    with _unlocked(encoder):
        encoder.virtual_tokens = slot
    return slot


def detach(encoder):
    """Removes the slot: the plain encoder again."""
    with _unlocked(encoder):
        encoder._tracker.untrack(encoder.virtual_tokens)
        encoder.virtual_tokens = None


__all__ = ["PromptLearningConfig", "SLOT", "VirtualTokenModule", "VirtualTokens", "attach", "detach", "torch_dense"]
