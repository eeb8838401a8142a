"""`save_pretrained` writes what transformers loads; Keras saving round-trips."""

import json

import keras
import numpy as np
import pytest

from tests.encoders.conftest import ALL, ENCODER_FIXTURES, reference, reference_inputs
from tfft.encoders import BertEncoder, Encoder, EncoderConfig

# Shards and .bin are load-side variants of `bert`; saving them is the same as saving `bert`.
SAVED = [name for name in ALL if name not in ("bert_sharded", "bert_bin")]


@pytest.mark.parametrize("name", SAVED)
def test_round_trip_through_tfft(name, tmp_path):
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / name)
    encoder.save_pretrained(tmp_path)
    again = Encoder.from_pretrained(tmp_path)
    assert again.loading_report.newly_initialized == []
    assert (again.lm_head is None) == (encoder.lm_head is None)
    ref = reference(name)
    np.testing.assert_allclose(again(reference_inputs(ref))["sequence_output"], ref["sequence_output"], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_saved_config_names_transformers_class(tmp_path):
    Encoder.from_pretrained(ENCODER_FIXTURES / "roberta_mlm").save_pretrained(tmp_path / "mlm")
    Encoder.from_pretrained(ENCODER_FIXTURES / "distilbert").save_pretrained(tmp_path / "base")
    mlm = json.loads((tmp_path / "mlm" / "config.json").read_text())
    base = json.loads((tmp_path / "base" / "config.json").read_text())
    assert mlm["architectures"] == ["RobertaForMaskedLM"] and mlm["layer_norm_eps"] == 1e-5
    assert base["architectures"] == ["DistilBertModel"] and base["dim"] == 32 and "hidden_size" not in base


def _torch_outputs(path, inputs, masked_lm):
    import torch
    import transformers

    auto = transformers.AutoModelForMaskedLM if masked_lm else transformers.AutoModel
    model = auto.from_pretrained(path, attn_implementation="eager").eval()
    if model.config.model_type == "distilbert":  # takes no token types
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    with torch.no_grad():
        out = model(**{k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()}, output_hidden_states=True)
    return out


@pytest.mark.requires("torch")
@pytest.mark.parametrize("name", SAVED)
def test_transformers_loads_saved_checkpoint(name, tmp_path):
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / name)
    encoder.save_pretrained(tmp_path)
    inputs = reference_inputs(reference(name))
    ours = encoder(inputs)["sequence_output"].numpy()
    theirs = _torch_outputs(tmp_path, inputs, masked_lm=encoder.lm_head is not None)
    if encoder.lm_head is not None:
        np.testing.assert_allclose(theirs.hidden_states[-1].numpy(), ours, atol=1e-5)
        np.testing.assert_allclose(theirs.logits.numpy(), encoder.masked_lm_logits(ours), atol=1e-5)
    else:
        np.testing.assert_allclose(theirs.last_hidden_state.numpy(), ours, atol=1e-5)


@pytest.mark.requires("torch")
def test_encoder_from_scratch_saves_for_transformers(tmp_path):
    config = EncoderConfig(model_type="bert", vocab_size=50, hidden_size=16, num_layers=1, num_heads=2,
                           intermediate_size=24, max_position_embeddings=20)
    encoder = BertEncoder(config)
    encoder.save_pretrained(tmp_path)
    inputs = {"input_ids": np.array([[2, 7, 9, 3]], np.int32), "attention_mask": np.ones((1, 4), np.int32)}
    theirs = _torch_outputs(tmp_path, inputs, masked_lm=False)
    np.testing.assert_allclose(theirs.last_hidden_state.numpy(), encoder(inputs)["sequence_output"], atol=1e-5)


@pytest.mark.parametrize("name", ["bert_mlm", "albert"])
def test_keras_save_and_load(name, tmp_path):
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / name)
    encoder.save(tmp_path / "encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")
    assert type(loaded) is type(encoder) and (loaded.lm_head is None) == (encoder.lm_head is None)
    ref = reference(name)
    np.testing.assert_allclose(loaded(reference_inputs(ref))["sequence_output"], ref["sequence_output"], atol=1e-5)
    rebuilt = type(encoder).from_config(encoder.get_config())
    assert len(rebuilt.weights) == len(encoder.weights)
