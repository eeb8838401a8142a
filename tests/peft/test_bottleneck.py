"""Bottleneck adapters (Houlsby, Pfeiffer, parallel): identity at the start, AdapterHub's forward
formulas, parameter counts, files, Keras saving, merging, every task model and architecture."""

import json

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file

import tfft
from tests.conftest import FIXTURES
from tests.peft.helpers import ids, outputs, perturb, snapshot, tiny_model
from tfft.errors import ConfigError
from tfft.peft import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig, parse_peft_config
from tfft.peft.bottleneck import BottleneckModule
from tfft.peft.bottleneck.layer import NON_LINEARITIES
from tfft.peft.files import read_adapter_config

HIDDEN, LAYERS, NUM_LABELS = 32, 2, 3
PRESETS = {"houlsby": HoulsbyConfig, "pfeiffer": PfeifferConfig, "parallel": ParallelAdapterConfig}


def _seeded_head(model):
    """A head with logits of order 1, where the adapter's own change shows."""
    kernel = np.random.default_rng(1).standard_normal((HIDDEN, NUM_LABELS)) * 0.5
    model.classifier.kernel.assign(kernel.astype("float32"))


def _keras_round_trip(model, path):
    model.save(path)
    return keras.saving.load_model(path)


@pytest.mark.parametrize("method", list(PRESETS))
def test_preset_identity_disable_merge_files_and_keras(method, tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    _seeded_head(model)
    base = outputs(model, tiny_batch)
    config = model.add_adapter("x", {"method": method})
    assert type(config) is PRESETS[method] and config.init_weights == "mam_adapter"
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)  # up-projection zero: exactly the base
    perturb(model.trainable_variables, scale=0.2)
    out = outputs(model, tiny_batch)
    assert not np.allclose(out, base, atol=1e-3)
    with model.disable_adapters():
        np.testing.assert_array_equal(outputs(model, tiny_batch), base)

    # Merging keeps the adapter in the graph; merge_and_unload cannot make a plain model of it.
    model.merge_adapter()
    assert model._adapters.merged
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    assert all(isinstance(m, BottleneckModule) for p, m in model._adapters.modules_of("x").items() if p != "classifier")
    with pytest.raises(ConfigError, match="cannot merge into the base weights"):
        model.merge_and_unload()
    merged = _keras_round_trip(model, tmp_path / "merged.keras")
    assert merged._adapters.merged and merged.peft_config["x"] == config
    np.testing.assert_array_equal(outputs(merged, tiny_batch), out)
    model.unmerge_adapter()
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)

    loaded = _keras_round_trip(model, tmp_path / "unmerged.keras")
    np.testing.assert_array_equal(outputs(loaded, tiny_batch), out)
    with loaded.disable_adapters():
        np.testing.assert_array_equal(outputs(loaded, tiny_batch), base)
    assert loaded.trainable_parameters() == model.trainable_parameters()

    model.save_adapter(tmp_path / "adapter")
    written = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert written["peft_type"] == "TFFT_BOTTLENECK" and written["method"] == method
    assert written["is_parallel"] == (method == "parallel") and written["mh_adapter"] == (method == "houlsby")
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    bottleneck = max(1, int(HIDDEN // config.reduction_factor))
    for i in range(LAYERS):
        prefix = f"base_model.model.bert.encoder.layer.{i}.output."
        assert tensors[prefix + "adapter_down.weight"].shape == (bottleneck, HIDDEN)
        assert tensors[prefix + "adapter_down.bias"].shape == (bottleneck,)
        assert tensors[prefix + "adapter_up.weight"].shape == (HIDDEN, bottleneck)
        assert tensors[prefix + "adapter_up.bias"].shape == (HIDDEN,)
    attention = [k for k in tensors if ".attention.output.adapter_" in k]
    assert len(attention) == (4 * LAYERS if method == "houlsby" else 0)
    assert len(tensors) == 4 * LAYERS + len(attention) + 2  # + the head's weight and bias

    fresh = tiny_model(tiny_checkpoint)
    fresh_base = outputs(fresh, tiny_batch)
    assert fresh.load_adapter(tmp_path / "adapter") == config  # the preset, not another one of the same peft_type
    np.testing.assert_array_equal(outputs(fresh, tiny_batch), out)
    with fresh.disable_adapters():
        np.testing.assert_array_equal(outputs(fresh, tiny_batch), fresh_base)


@pytest.mark.parametrize("init", ["bert", "houlsby", "mam_adapter"])
def test_adapterhub_inits(init, tiny_checkpoint, tiny_batch):
    """AdapterHub's three inits stay selectable; Houlsby et al.'s own starts near the base too."""
    model = tiny_model(tiny_checkpoint)
    _seeded_head(model)
    base = outputs(model, tiny_batch)
    model.add_adapter("x", HoulsbyConfig(init_weights=init, reduction_factor=1))  # 32 x 32 kernels
    module = model._adapters.modules_of("x")["bert.encoder.layer.0.output.LayerNorm"]
    down, up = module.adapter_down.kernel.numpy(), module.adapter_up.kernel.numpy()
    assert not module.adapter_down.bias.numpy().any() and not module.adapter_up.bias.numpy().any()
    if init == "bert":  # N(0, 0.02)
        assert 0.018 < down.std() < 0.022 and 0.018 < up.std() < 0.022
    elif init == "houlsby":  # N(0, 0.01) truncated at ±0.02
        assert np.abs(down).max() <= 0.02 and np.abs(up).max() <= 0.02 and 0.008 < down.std() < 0.0096
        assert np.abs(outputs(model, tiny_batch) - base).max() < 1e-3
    else:  # torch's Linear init for down, up zero
        assert np.abs(down).max() <= 1 / np.sqrt(HIDDEN) and 0.09 < down.std() < 0.11 and not up.any()  # std 1/sqrt(3·32)


def _adapter_parameters(hidden, factor):
    size = max(1, int(hidden // factor))
    return 2 * hidden * size + size + hidden


def test_trainable_variables_and_counts(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    base_variables = list(model.weights)
    model.add_adapter("houlsby", HoulsbyConfig())
    model.add_adapter("pfeiffer", PfeifferConfig(reduction_factor=4))
    model.add_adapter("parallel", ParallelAdapterConfig(scaling="channel"))
    head = HIDDEN * NUM_LABELS + NUM_LABELS
    expected = {
        "houlsby": 2 * _adapter_parameters(HIDDEN, 16) * LAYERS,  # 2 · (2·32·2 + 2 + 32) per layer
        "pfeiffer": _adapter_parameters(HIDDEN, 4) * LAYERS,
        "parallel": (_adapter_parameters(HIDDEN, 2) + HIDDEN) * LAYERS,  # + the channel scaling
    }
    for name, adapter in expected.items():
        model.set_adapter(name)
        counts = model.trainable_parameters()
        assert (counts["adapter"], counts["head"]) == (adapter, head), name
        modules = model._adapters.modules_of(name)
        assert ids(model.trainable_variables) == ids([v for m in modules.values() for v in m.weights])
        per_layer = 2 if name == "houlsby" else 1
        assert sum(isinstance(m, BottleneckModule) for m in modules.values()) == LAYERS * per_layer
        assert not any(v.trainable for v in base_variables)


def test_houlsby_count_on_hidden_384():
    """Houlsby, reduction 16, hidden 384: 2 · (2·384·24 + 24 + 384) per layer."""
    from tfft.encoders import BertEncoder, EncoderConfig

    encoder = BertEncoder(EncoderConfig(model_type="bert", vocab_size=100, hidden_size=384, num_layers=1,
                                        num_heads=12, intermediate_size=32, max_position_embeddings=16))
    model = tfft.SequenceClassifier(encoder, labels=["a", "b"])
    model.add_adapter("x", HoulsbyConfig())
    assert model.trainable_parameters()["adapter"] == 2 * (2 * 384 * 24 + 24 + 384) == 37680


# --- AdapterHub's forward, transcribed ---------------------------------------------------------

def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _layer_norm(norm):
    gamma, beta, eps = _np(norm.gamma), _np(norm.beta), norm.epsilon

    def apply(v):
        mean = v.mean(-1, keepdims=True)
        return (v - mean) / np.sqrt(((v - mean) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta
    return apply


def _adapterhub(h, x, ln, module, config):
    """AdapterHub 1.3's `bottleneck_layer_forward` for one adapter: `Adapter` / `ParallelAdapter`'s
    `pre_forward`, `forward` and `post_forward`, line by line (no ln_before/ln_after, gating, dropout)."""
    input_hidden_states = h
    if config.is_parallel:
        hidden, residual = x, x
    else:
        hidden = h
        if config.residual_before_ln is True:
            residual = h
        if config.original_ln_before:
            hidden = h + x
            if config.residual_before_ln == "post_add":
                residual = hidden
            hidden = ln(hidden)
        if not config.residual_before_ln:
            residual = hidden
    activation = NON_LINEARITIES[config.non_linearity]
    down = np.asarray(activation(hidden @ _np(module.adapter_down.kernel) + _np(module.adapter_down.bias)))
    up = (down @ _np(module.adapter_up.kernel) + _np(module.adapter_up.bias)) * _np(module.scaling)
    output = up if config.is_parallel else up + residual
    if config.is_parallel:
        output = output + input_hidden_states
    if config.original_ln_after:
        output = ln(output + x)
    return output


@pytest.mark.parametrize("config", [
    HoulsbyConfig(), PfeifferConfig(), ParallelAdapterConfig(),
    PfeifferConfig(residual_before_ln=False, scaling="channel", non_linearity="gelu"),
    PfeifferConfig(residual_before_ln="post_add", scaling="learned", mh_adapter=True, non_linearity="tanh"),
    HoulsbyConfig(original_ln_after=False, non_linearity="leakyrelu", reduction_factor=5),
    ParallelAdapterConfig(mh_adapter=True, scaling=0.5, non_linearity="swish"),
], ids=["houlsby", "pfeiffer", "parallel", "seq_residual_after_ln", "seq_post_add", "no_ln_after", "parallel_both"])
def test_block_equals_adapterhub_formulas(config, tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    block = model.encoder.transformer_layers[0]
    rng = np.random.default_rng(0)
    for norm in (block.attention_norm, block.output_norm):  # base LayerNorms that are not the identity
        norm.gamma.assign(1 + 0.3 * rng.standard_normal(HIDDEN).astype("float32"))
        norm.beta.assign(0.3 * rng.standard_normal(HIDDEN).astype("float32"))
    model.add_adapter("x", config)
    perturb(model.trainable_variables, scale=0.3)
    x = rng.standard_normal((2, 5, HIDDEN)).astype("float32")
    bias = np.zeros((2, 1, 1, 5), "float32")

    def sub_block(norm, h, residual):
        ln = _layer_norm(getattr(norm, "base_layer", norm))
        if not hasattr(norm, "adapters"):  # no adapter at this sub-block
            return ln(_np(residual) + _np(h))
        return _adapterhub(_np(h), _np(residual), ln, norm.adapters["x"], config)

    h1 = block.attention(x, bias, training=False)
    x1 = sub_block(block.attention_norm, h1, x).astype("float32")
    expected = sub_block(block.output_norm, block.ffn(x1), x1)
    np.testing.assert_allclose(block(x, bias, training=False).numpy(), expected, atol=2e-5)


# --- task models, architectures, training ------------------------------------------------------

# Each architecture's sub-block paths: under the sub-block where its LayerNorm is `LayerNorm`,
# else under the LayerNorm itself. ALBERT's one shared block has one adapter pair.
ARCHITECTURES = {
    "bert": ["bert.encoder.layer.{i}.attention.output", "bert.encoder.layer.{i}.output"],
    "roberta": ["roberta.encoder.layer.{i}.attention.output", "roberta.encoder.layer.{i}.output"],
    "electra": ["electra.encoder.layer.{i}.attention.output", "electra.encoder.layer.{i}.output"],
    "xlm_roberta": ["roberta.encoder.layer.{i}.attention.output", "roberta.encoder.layer.{i}.output"],
    "distilbert": ["distilbert.transformer.layer.{i}.sa_layer_norm",
                   "distilbert.transformer.layer.{i}.output_layer_norm"],
    "albert": ["albert.encoder.albert_layer_groups.0.albert_layers.0.attention",
               "albert.encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm"],
}


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_architectures(architecture, tmp_path):
    def load():
        return tfft.SequenceClassifier.from_pretrained(FIXTURES / "encoders" / architecture, labels=["a", "b"],
                                                       tokenizer=False)

    batch = {"input_ids": np.random.default_rng(0).integers(5, 128, (2, 7)), "attention_mask": np.ones((2, 7), "int32")}
    batch["attention_mask"][1, 4:] = 0
    model = load()
    base = outputs(model, batch)
    model.add_adapter("x", HoulsbyConfig(reduction_factor=8))
    np.testing.assert_array_equal(outputs(model, batch), base)
    perturb(model.trainable_variables)
    out = outputs(model, batch)
    assert not np.allclose(out, base, atol=1e-4)
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    layers = 1 if architecture == "albert" else LAYERS
    paths = {f"base_model.model.{p.format(i=i)}" for p in ARCHITECTURES[architecture] for i in range(layers)}
    assert {k.rsplit(".", 2)[0] for k in tensors if ".adapter_" in k} == paths
    assert model.trainable_parameters()["adapter"] == 2 * layers * _adapter_parameters(HIDDEN, 8)
    fresh = load()
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(outputs(fresh, batch), out)


def test_fit_trains_only_the_adapter_and_the_head(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint, dropout=0.0)
    model.add_adapter("x", HoulsbyConfig(dropout=0.1))
    before = outputs(model, tiny_batch)
    np.testing.assert_array_equal(outputs(model, tiny_batch), before)  # no adapter dropout at inference
    frozen = model._adapters.frozen_variables()
    frozen_before = snapshot(frozen)
    trainable = list(model.trainable_variables)
    trainable_before = snapshot(trainable)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))  # the task's own loss
    model.fit(tiny_batch, np.array([0, 1, 2]), batch_size=3, epochs=3, verbose=0, shuffle=False)
    assert ids(model.optimizer._trainable_variables) == ids(trainable)
    for variable, value in zip(frozen, frozen_before):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    for variable, value in zip(trainable, trainable_before):  # down, up (zero at the start) and the head copy
        assert not np.array_equal(variable.numpy(), value), variable.path
    assert not np.allclose(outputs(model, tiny_batch), before, atol=1e-4)


# --- config errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"method": "houlsby", "reduction_factor": 0}, "'peft.reduction_factor' must be a positive number"),
    ({"method": "houlsby", "reduction_factor": "big"}, "'peft.reduction_factor' must be"),
    ({"method": "pfeiffer", "non_linearity": "softmax"}, "'peft.non_linearity' must be one of"),
    ({"method": "pfeiffer", "init_weights": "xavier"}, "'peft.init_weights' must be one of"),
    ({"method": "parallel", "scaling": "huge"}, "'peft.scaling' must be a number, 'learned' or 'channel'"),
    ({"method": "pfeiffer", "residual_before_ln": "pre"}, "'peft.residual_before_ln' must be true, false or"),
    ({"method": "houlsby", "residual_before_ln": "post_add"}, "'peft.residual_before_ln' = 'post_add' needs"),
    ({"method": "parallel", "original_ln_before": True}, "'peft.original_ln_before' applies to sequential"),
    ({"method": "houlsby", "mh_adapter": False, "output_adapter": False},
     "'peft.mh_adapter' and 'peft.output_adapter'"),
    ({"method": "houlsby", "mh_adapter": "yes"}, "'peft.mh_adapter' must be"),
    ({"method": "houlsby", "dropout": 1.0}, "'peft.dropout' must be in"),
    ({"method": "pfeiffer", "ln_after": True}, "unknown key 'peft.ln_after'"),
    (HoulsbyConfig(reduction_factor=-2), "'peft.reduction_factor' must be a positive number"),
])
def test_bad_config_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_peft_config(values, "run.yaml")


def test_a_bad_value_in_an_adapter_file_names_the_key(tmp_path):
    values = {"peft_type": "TFFT_BOTTLENECK", "method": "pfeiffer", **PfeifferConfig().to_dict(), "scaling": "x"}
    (tmp_path / "adapter_config.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="adapter_config.json: 'peft.scaling' must be"):
        read_adapter_config(tmp_path)
