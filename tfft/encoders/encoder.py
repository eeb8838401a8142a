"""`Encoder`: the Keras model every architecture subclasses, with Hugging Face loading and saving.

An architecture subclass says how to build its layers and gives one table, `weight_map()`, from
Hugging Face tensor names to its Keras variables. Loading, saving, the loading report and input
checking live here once for all of them.
"""

import dataclasses
import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from tfft.encoders.config import EncoderConfig, read_hf_config
from tfft.encoders.layers import Pooler, attention_bias
from tfft.errors import CheckpointError

logger = logging.getLogger("tfft")

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

_ENCODERS = {}


def register_encoder(cls):
    """Class decorator: makes `Encoder.from_pretrained` pick `cls` for its `model_types`."""
    for model_type in cls.model_types:
        _ENCODERS[model_type] = cls
    return keras.saving.register_keras_serializable(package="tfft")(cls)


def sequence_classification_model_types():
    """model_type values whose encoders tfft saves as transformers' `*ForSequenceClassification`."""
    return sorted(t for t, cls in _ENCODERS.items() if cls.hf_sequence_classification_class)


def encoder_class_for(model_type, source="config.json"):
    if model_type not in _ENCODERS:
        supported = ", ".join(sorted(_ENCODERS))
        raise CheckpointError(f"{source}: model_type {model_type!r} is not supported by tfft (supported: {supported})")
    return _ENCODERS[model_type]


@dataclasses.dataclass
class LoadingReport:
    """What `from_pretrained` did with a checkpoint's tensors."""

    checkpoint: str
    unused: list = dataclasses.field(default_factory=list)
    newly_initialized: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"Loaded {self.checkpoint}"]
        if self.unused:
            lines.append(f"  {len(self.unused)} checkpoint tensors not used: {', '.join(self.unused)}")
        if self.newly_initialized:
            lines.append(
                f"  {len(self.newly_initialized)} encoder weights newly initialized: "
                f"{', '.join(self.newly_initialized)}"
            )
        if not (self.unused or self.newly_initialized):
            lines.append("  every tensor matched")
        return "\n".join(lines)

    def claim(self, used=(), filled=()):
        """Records that a task head used the checkpoint tensors `used` and filled the encoder
        weights `filled` (RoBERTa's classification head holds its pooler)."""
        used, filled = set(used), set(filled)
        self.unused = [name for name in self.unused if name not in used]
        self.newly_initialized = [name for name in self.newly_initialized if name not in filled]

    def log(self):
        """Logs the report as a warning on the `tfft` logger when a tensor did not match."""
        if self.unused or self.newly_initialized:
            logger.warning("%s", self)


# Weight-table helpers: map Hugging Face tensor names to (variable, transpose). PyTorch Linear
# weights are [out, in]; Keras Dense kernels are [in, out].
def dense_weights(name, dense):
    return {f"{name}.weight": (dense.kernel, True), f"{name}.bias": (dense.bias, False)}


def norm_weights(name, norm):
    return {f"{name}.weight": (norm.gamma, False), f"{name}.bias": (norm.beta, False)}


def embedding_weights(name, embedding):
    return {f"{name}.weight": (embedding.embeddings, False)}


def hf_tensors(table):
    """float32 numpy arrays in PyTorch's layout from a `{name: (variable, transpose)}` table."""
    tensors = {}
    for name, (variable, transpose) in table.items():
        value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
        tensors[name] = np.ascontiguousarray(value.T if transpose else value)
    return tensors


def bert_layer_weights(prefix, layer):
    """Tensor names of one Hugging Face `BertLayer` (also RoBERTa, XLM-R, ELECTRA)."""
    attention = layer.attention
    return {
        **dense_weights(f"{prefix}.attention.self.query", attention.query),
        **dense_weights(f"{prefix}.attention.self.key", attention.key),
        **dense_weights(f"{prefix}.attention.self.value", attention.value),
        **dense_weights(f"{prefix}.attention.output.dense", attention.output_dense),
        **norm_weights(f"{prefix}.attention.output.LayerNorm", layer.attention_norm),
        **dense_weights(f"{prefix}.intermediate.dense", layer.ffn.intermediate),
        **dense_weights(f"{prefix}.output.dense", layer.ffn.output_dense),
        **norm_weights(f"{prefix}.output.LayerNorm", layer.output_norm),
    }


def _standardize_inputs(inputs):
    """Checks the input dict and fills in the optional tensors."""
    if not isinstance(inputs, dict):
        inputs = {"input_ids": inputs}
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown:
        raise ValueError(f"unexpected encoder inputs {unknown}; expected keys {list(INPUT_NAMES)}")
    if inputs.get("input_ids") is None:
        raise ValueError("encoder inputs need 'input_ids', an int32 tensor [batch, seq]")
    tensors = {}
    for name in INPUT_NAMES:
        if inputs.get(name) is None:
            continue
        tensor = ops.convert_to_tensor(inputs[name])
        if len(tensor.shape) != 2:
            raise ValueError(f"encoder input '{name}' must be [batch, seq], got shape {tuple(tensor.shape)}")
        tensors[name] = ops.cast(tensor, "int32") if tensor.dtype != "int32" else tensor
    input_ids = tensors["input_ids"]
    for name, tensor in tensors.items():
        if None not in tensor.shape and None not in input_ids.shape and tensor.shape != input_ids.shape:
            raise ValueError(
                f"encoder input '{name}' has shape {tuple(tensor.shape)} but 'input_ids' has "
                f"{tuple(input_ids.shape)}"
            )
    if "attention_mask" not in tensors:
        tensors["attention_mask"] = ops.ones_like(input_ids)
    return tensors


class Encoder(keras.Model):
    """A pretrained transformer encoder.

    Call it with a dict of int32 `[batch, seq]` tensors (`input_ids`, and optionally
    `attention_mask` and `token_type_ids`); it returns `sequence_output` `[batch, seq, hidden]`,
    `pooled_output` `[batch, hidden]` (the checkpoint's pooler where it has one, else the first
    token's hidden state) and, with `output_hidden_states=True`, `hidden_states`: the embedding
    output followed by every layer's output.

    Example:
        >>> encoder = tfft.Encoder.from_pretrained("path/to/all-MiniLM-L6-v2")
        >>> out = encoder({"input_ids": ids, "attention_mask": mask})
        >>> out["sequence_output"].shape
        TensorShape([2, 9, 384])

    Args:
        config: an `EncoderConfig` (or its dict).
        pooler: build the pretraining pooler (dense + tanh on the first token).
        lm_head: build the masked-LM head, tied to the word embeddings
            (`encoder.masked_lm_logits(sequence_output)`).
    """

    model_types = ()  # Hugging Face model_type values this class loads.
    base_prefix = ""  # Prefix of the encoder's tensors inside task checkpoints ("bert").
    lm_head_prefix = ""  # Prefix of the masked-LM head's tensors ("cls.predictions.").
    tied_aliases = ()  # Head tensors that are copies of other tensors (the tied decoder).
    has_pooler = True
    hf_model_class = ""  # transformers class names written to config.json "architectures".
    hf_masked_lm_class = ""
    # transformers' `*ForSequenceClassification` whose logits are `classifier(pooled_output)` with
    # tfft's pooler (dense + tanh on the first token); "" where no transformers class computes that.
    hf_sequence_classification_class = ""
    hf_classifier_name = "classifier"  # its output Linear
    hf_head_pooler_name = ""  # where its head holds the pooler dense; "" keeps it in the encoder
    hf_classifier_dropout_key = "classifier_dropout"  # config.json key of the head's dropout
    # EncoderConfig field -> Hugging Face config.json key.
    hf_config_keys = {
        "vocab_size": "vocab_size",
        "hidden_size": "hidden_size",
        "num_layers": "num_hidden_layers",
        "num_heads": "num_attention_heads",
        "intermediate_size": "intermediate_size",
        "hidden_act": "hidden_act",
        "hidden_dropout": "hidden_dropout_prob",
        "attention_dropout": "attention_probs_dropout_prob",
        "max_position_embeddings": "max_position_embeddings",
        "type_vocab_size": "type_vocab_size",
        "layer_norm_eps": "layer_norm_eps",
        "pad_token_id": "pad_token_id",
        "initializer_range": "initializer_range",
    }

    def __init__(self, config, pooler=None, lm_head=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = EncoderConfig.from_dict(config)
        self.config = config
        self.pooler = None
        if self.has_pooler if pooler is None else pooler:
            self.pooler = Pooler(config.hidden_size, config.initializer_range, name="pooler", dtype=self.dtype_policy)
        self.build_layers()
        self.lm_head = self.build_lm_head() if lm_head else None
        self.loading_report = None
        self.virtual_tokens = None  # tfft.peft's prompt-learning adapters, once one is added
        self._build_sublayers()
        # Built from the config alone. Not through `build()`: Keras would record a `None` input
        # shape and later trace a float serving signature from it when exporting.
        self.built = True

    # --- what an architecture defines -------------------------------------------------------

    def build_layers(self):
        """Creates `self.embeddings` and the transformer blocks."""
        raise NotImplementedError

    def layer_sequence(self):
        """The transformer blocks in the order they run (a shared block may repeat)."""
        raise NotImplementedError

    def build_lm_head(self):
        raise NotImplementedError(f"{type(self).__name__} has no masked-LM head")

    def weight_map(self):
        """`{hf_tensor_name: (keras_variable, transpose)}` for the encoder and its heads."""
        raise NotImplementedError

    # --- Keras ------------------------------------------------------------------------------

    def _build_sublayers(self):
        self.embeddings.build()
        for layer in self.unique_layers():
            layer.build()
        for head in (self.pooler, self.lm_head):
            if head is not None:
                head.build()

    def unique_layers(self):
        seen = {}
        for layer in self.layer_sequence():
            seen.setdefault(id(layer), layer)
        return list(seen.values())

    def call(self, inputs, training=None, output_hidden_states=False):
        tensors = _standardize_inputs(inputs)
        input_ids, mask = tensors["input_ids"], tensors["attention_mask"]
        # tfft.peft's prompt learning (tfft.peft.virtual_tokens): soft prompts before the tokens, or
        # key/value prefixes at every layer; n virtual tokens, always visible. None: the plain encoder.
        virtual = self.virtual_tokens.running() if self.virtual_tokens is not None else None
        prompts = prefixes = None
        if virtual is not None:
            batch = ops.shape(input_ids)[0]
            prompts, prefixes = virtual.prompts(batch, training), virtual.prefixes(training)
            mask = ops.concatenate([ops.ones((batch, virtual.num_virtual_tokens), mask.dtype), mask], axis=1)
        x = self.embeddings(input_ids, tensors.get("token_type_ids"), training=training, prompts=prompts,
                            past_length=virtual.num_virtual_tokens if prefixes is not None else 0)
        bias = attention_bias(mask, keras.backend.standardize_dtype(x.dtype))
        hidden_states = [x]
        for i, layer in enumerate(self.layer_sequence()):
            x = layer(x, bias, training=training, prefix=None if prefixes is None else prefixes[i])
            hidden_states.append(x)
        # The pooler sees the first position, a soft prompt's (as transformers' does under peft);
        # the per-token outputs are the real tokens' only.
        pooled = self.pooler(x) if self.pooler is not None else x[:, 0]
        if prompts is not None:
            hidden_states = [h[:, prompts.shape[1]:] for h in hidden_states]
            x = hidden_states[-1]
        outputs = {"sequence_output": x, "pooled_output": pooled}
        if output_hidden_states:
            outputs["hidden_states"] = hidden_states
        return outputs

    def masked_lm_logits(self, sequence_output):
        """Vocabulary logits `[batch, seq, vocab]` from the masked-LM head."""
        if self.lm_head is None:
            raise ValueError(
                "this encoder has no masked-LM head; load it with "
                "Encoder.from_pretrained(..., lm_head=True) or build it with lm_head=True"
            )
        return self.lm_head(sequence_output, self.embeddings.word_embeddings.embeddings)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "config": self.config.to_dict(),
            "pooler": self.pooler is not None,
            "lm_head": self.lm_head is not None,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)

    # --- Hugging Face configs ---------------------------------------------------------------

    @classmethod
    def config_from_hf(cls, hf_config):
        values = {field: hf_config[key] for field, key in cls.hf_config_keys.items() if key in hf_config}
        return EncoderConfig(model_type=hf_config["model_type"], hf_config=dict(hf_config), **values)

    @classmethod
    def config_to_hf(cls, config):
        hf_config = dict(config.hf_config)
        hf_config["model_type"] = config.model_type
        for field, key in cls.hf_config_keys.items():
            hf_config[key] = getattr(config, field)
        return hf_config

    # --- loading and saving -----------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, name_or_path, *, lm_head="auto", pooler="auto", revision=None, return_unused=False, **kwargs
    ):
        """Loads a Hugging Face checkpoint (local directory or hub id).

        The architecture comes from config.json's `model_type`; calling this on a subclass
        (`tfft.encoders.BertEncoder.from_pretrained`) also checks that it matches. Weights come
        from model.safetensors (or its shards), or pytorch_model.bin when torch is installed.

        Args:
            name_or_path: a directory with config.json and weights, or a hub id.
            lm_head: "auto" loads the masked-LM head when the checkpoint has one; True always
                builds it (newly initialized if absent); False never.
            pooler: "auto" loads the pooler when the architecture and checkpoint have one;
                False leaves it out (its tensors are then reported unused).
            revision: hub revision (branch, tag or commit).
            return_unused: return `(encoder, {name: array})` with the checkpoint tensors the
                encoder did not use, for a task head to load; the report is then not logged, so
                the caller can `claim` what it used and `log` it.
            **kwargs: passed to the encoder's constructor (e.g. `dtype="mixed_bfloat16"`).
        """
        from tfft.hub import resolve_pretrained_dir
        from tfft.weights import load_state_dict

        model_dir = resolve_pretrained_dir(name_or_path, revision=revision)
        hf_config = read_hf_config(model_dir)
        encoder_cls = encoder_class_for(hf_config["model_type"], source=Path(model_dir) / "config.json")
        if cls is not Encoder and not issubclass(encoder_cls, cls):
            raise CheckpointError(
                f"{model_dir}/config.json has model_type {hf_config['model_type']!r}, "
                f"which {cls.__name__} cannot load; use tfft.Encoder.from_pretrained"
            )
        config = encoder_cls.config_from_hf(hf_config)
        encoder_cls.check_supported(config, Path(model_dir) / "config.json")
        state = encoder_cls.normalize_state_names(load_state_dict(model_dir))
        if lm_head == "auto":
            lm_head = any(encoder_cls.is_head_tensor(name) for name in state)
        if pooler == "auto":
            pooler = encoder_cls.has_pooler and any(name.startswith("pooler.") for name in state)
        encoder = encoder_cls(config, pooler=pooler, lm_head=lm_head, **kwargs)
        encoder.loading_report = encoder.assign_state(state, source=str(model_dir))
        if return_unused:
            return encoder, {name: state[name] for name in encoder.loading_report.unused}
        encoder.loading_report.log()
        return encoder

    @classmethod
    def check_supported(cls, config, source):
        """Raises for config values this implementation cannot reproduce exactly."""
        position_type = config.hf_config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise CheckpointError(
                f"{source}: position_embedding_type {position_type!r} is not supported (only 'absolute')"
            )

    @classmethod
    def normalize_state_names(cls, state):
        """Brings checkpoint tensor names to the table's form.

        Task checkpoints store the encoder under e.g. `bert.`; the table has no prefix.
        TF-converted checkpoints name LayerNorm parameters `gamma`/`beta`, as transformers
        still accepts.
        """
        prefix = f"{cls.base_prefix}."
        normalized = {}
        for name, value in state.items():
            name = name.removeprefix(prefix)
            if name.endswith(".gamma") or name.endswith(".beta"):
                name = name.rsplit(".", 1)[0] + (".weight" if name.endswith(".gamma") else ".bias")
            normalized[name] = value
        return normalized

    def assign_state(self, state, source):
        """Copies checkpoint tensors into the variables; raises before assigning on any mismatch."""
        table = self.weight_map()
        assignments = []
        for name, (variable, transpose) in table.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            value = value.T if transpose else value
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"{source}: tensor '{name}' has shape {tuple(np.asarray(state[name]).shape)}, but "
                    f"config.json implies {tuple(variable.shape[::-1] if transpose else variable.shape)}"
                )
            assignments.append((variable, value))
        for variable, value in assignments:
            variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))
        ignored = set(self.tied_aliases)
        unused = [
            name
            for name in state
            if name not in table and name not in ignored and not name.endswith(("position_ids", "token_type_ids"))
        ]
        return LoadingReport(
            checkpoint=source,
            unused=sorted(unused),
            newly_initialized=sorted(name for name in table if name not in state),
        )

    @classmethod
    def is_head_tensor(cls, name):
        return bool(cls.lm_head_prefix) and name.startswith(cls.lm_head_prefix)

    def sequence_classification_head_weights(self, classifier):
        """`{hf_tensor_name: (variable, transpose)}` of the head of `hf_sequence_classification_class`,
        for `classifier`, the Dense layer applied to `pooled_output`."""
        table = dense_weights(self.hf_classifier_name, classifier)
        if self.hf_head_pooler_name and self.pooler is not None:
            table.update(dense_weights(self.hf_head_pooler_name, self.pooler.dense))
        return table

    def hf_weight_map(self, classifier=None):
        """The weight table in the layout of a transformers model class.

        Given `classifier` (the Dense layer applied to `pooled_output`) it is
        `hf_sequence_classification_class`'s; else `*ForMaskedLM`'s with a masked-LM head, or
        the bare `*Model`'s. Task models keep the encoder's tensors under `base_prefix`.
        """
        head = {} if classifier is None else self.sequence_classification_head_weights(classifier)
        in_head = {id(variable) for variable, _ in head.values()}
        prefixed = classifier is not None or self.lm_head is not None
        table = {}
        for name, entry in self.weight_map().items():
            if id(entry[0]) in in_head or (classifier is not None and self.is_head_tensor(name)):
                continue
            table[f"{self.base_prefix}.{name}" if prefixed and not self.is_head_tensor(name) else name] = entry
        table.update(head)
        return table

    def save_pretrained(self, save_dir):
        """Writes config.json and model.safetensors that transformers loads back.

        With a masked-LM head the layout is transformers' `*ForMaskedLM` (encoder tensors under
        `base_prefix`); without one it is the bare `*Model`.
        """
        from tfft.weights import save_state_dict, write_json_atomic

        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        hf_config = self.config_to_hf(self.config)
        hf_config["architectures"] = [self.hf_masked_lm_class if self.lm_head is not None else self.hf_model_class]
        save_state_dict(hf_tensors(self.hf_weight_map()), save_dir / "model.safetensors")
        write_json_atomic(hf_config, save_dir / "config.json")
        return save_dir

