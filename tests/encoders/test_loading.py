"""Loading checkpoints: options, the loading report, and one clear error per broken checkpoint."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tfft.encoders import BertEncoder, Encoder, RobertaEncoder
from tfft.errors import CheckpointError


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def test_picks_class_from_model_type():
    assert type(Encoder.from_pretrained(ENCODER_FIXTURES / "roberta")) is RobertaEncoder
    assert type(BertEncoder.from_pretrained(ENCODER_FIXTURES / "bert")) is BertEncoder


def test_subclass_refuses_other_architecture():
    with pytest.raises(CheckpointError, match="model_type 'bert'.*RobertaEncoder"):
        RobertaEncoder.from_pretrained(ENCODER_FIXTURES / "bert")


def test_missing_config(fixture_copy):
    path = fixture_copy("bert")
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"no config\.json in .*bert"):
        Encoder.from_pretrained(path)


def test_invalid_config_json(fixture_copy):
    path = fixture_copy("bert")
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        Encoder.from_pretrained(path)


def test_unknown_model_type(fixture_copy):
    path = fixture_copy("bert")
    edit_config(path, model_type="gpt2")
    with pytest.raises(CheckpointError, match=r"config\.json: model_type 'gpt2' is not supported.*bert"):
        Encoder.from_pretrained(path)


def test_shape_mismatch_names_tensor(fixture_copy):
    path = fixture_copy("bert")
    edit_config(path, vocab_size=130)
    with pytest.raises(CheckpointError, match=r"'embeddings\.word_embeddings\.weight' has shape \(128, 32\).*\(130, 32\)"):
        Encoder.from_pretrained(path)


def test_transposed_kernel_shape_mismatch(fixture_copy):
    path = fixture_copy("bert")
    edit_config(path, intermediate_size=40)
    with pytest.raises(CheckpointError, match=r"'encoder\.layer\.0\.intermediate\.dense\.weight' has shape \(37, 32\).*\(40, 32\)"):
        Encoder.from_pretrained(path)


def test_truncated_weights_file(fixture_copy):
    path = fixture_copy("bert")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        Encoder.from_pretrained(path)


def test_missing_weights(fixture_copy):
    path = fixture_copy("bert")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Encoder.from_pretrained(path)


def test_unsupported_position_embedding_type(fixture_copy):
    path = fixture_copy("bert")
    edit_config(path, position_embedding_type="relative_key")
    with pytest.raises(CheckpointError, match="position_embedding_type 'relative_key'"):
        Encoder.from_pretrained(path)


def test_report_lists_unused_and_new(fixture_copy, caplog):
    path = fixture_copy("bert")
    state = load_file(path / "model.safetensors")
    state["extra.weight"] = np.zeros(3, np.float32)
    del state["encoder.layer.1.output.dense.bias"]
    save_file(state, path / "model.safetensors")
    with caplog.at_level("WARNING", logger="tfft"):
        encoder = Encoder.from_pretrained(path)
    assert encoder.loading_report.unused == ["extra.weight"]
    assert encoder.loading_report.newly_initialized == ["encoder.layer.1.output.dense.bias"]
    assert "extra.weight" in caplog.text and "encoder.layer.1.output.dense.bias" in caplog.text


def test_legacy_layer_norm_names_and_prefix(fixture_copy):
    """TF-converted checkpoints: `bert.` prefix and LayerNorm gamma/beta."""
    path = fixture_copy("bert")
    state = load_file(path / "model.safetensors")
    renamed = {}
    for name, value in state.items():
        if "LayerNorm" in name:
            name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
        renamed[f"bert.{name}"] = value
    save_file(renamed, path / "model.safetensors")
    encoder = Encoder.from_pretrained(path)
    assert encoder.loading_report.unused == encoder.loading_report.newly_initialized == []
    ref = reference("bert")
    np.testing.assert_allclose(encoder(reference_inputs(ref))["sequence_output"], ref["sequence_output"], atol=1e-5)


def test_lm_head_options():
    with_head = Encoder.from_pretrained(ENCODER_FIXTURES / "bert_mlm")
    assert with_head.lm_head is not None
    without = Encoder.from_pretrained(ENCODER_FIXTURES / "bert_mlm", lm_head=False)
    assert without.lm_head is None
    assert without.loading_report.unused == sorted(
        ["cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.weight",
         "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight"]
    )
    with pytest.raises(ValueError, match="no masked-LM head"):
        without.masked_lm_logits(np.zeros((1, 2, 32), np.float32))
    forced = Encoder.from_pretrained(ENCODER_FIXTURES / "bert", lm_head=True)
    assert "cls.predictions.bias" in forced.loading_report.newly_initialized
    # The ELECTRA discriminator has none (its generator is another model): refused, not faked.
    assert Encoder.from_pretrained(ENCODER_FIXTURES / "electra").lm_head is None
    with pytest.raises(ValueError, match="ELECTRA discriminator has no masked-LM head"):
        Encoder.from_pretrained(ENCODER_FIXTURES / "electra", lm_head=True)


def test_lm_head_decoder_is_tied_to_word_embeddings():
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "bert_mlm")
    ref = reference("bert_mlm")
    sequence = encoder(reference_inputs(ref))["sequence_output"]
    table = encoder.embeddings.word_embeddings.embeddings
    table.assign(table.numpy() * 2.0)
    assert not np.allclose(encoder.masked_lm_logits(sequence), ref["mlm_logits"], atol=1e-3)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"input_ids": np.zeros((2, 3, 4), np.int32)}, r"'input_ids' must be \[batch, seq\], got shape \(2, 3, 4\)"),
        ({"attention_mask": np.ones((1, 3), np.int32)}, "need 'input_ids'"),
        ({"input_ids": np.ones((1, 3), np.int32), "attention_mask": np.ones((1, 4), np.int32)},
         r"'attention_mask' has shape \(1, 4\) but 'input_ids' has \(1, 3\)"),
        ({"input_ids": np.ones((1, 3), np.int32), "labels": np.ones((1,))}, r"unexpected encoder inputs \['labels'\]"),
    ],
)
def test_bad_inputs_name_the_tensor(inputs, message):
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "bert")
    with pytest.raises(ValueError, match=message):
        encoder(inputs)


def test_bare_tensor_and_int64_inputs():
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "bert")
    ids = np.array([[5, 6, 7]], np.int64)
    out = encoder(ids)
    np.testing.assert_allclose(out["sequence_output"], encoder({"input_ids": ids.astype(np.int32)})["sequence_output"])
