"""tfft encoders reproduce transformers' reference outputs (fixtures from tools/make_encoder_fixtures.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.encoders.conftest import ALL, ENCODER_FIXTURES, fixture_params, reference, reference_inputs
from tfft.encoders import Encoder

ATOL = 1e-5


@pytest.fixture(scope="module", params=fixture_params(ALL))
def loaded(request):
    name = request.param
    return name, Encoder.from_pretrained(ENCODER_FIXTURES / name), reference(name)


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float32) - b)))


def test_sequence_and_hidden_states_match(loaded):
    name, encoder, ref = loaded
    out = encoder(reference_inputs(ref), output_hidden_states=True)
    assert max_diff(out["sequence_output"], ref["sequence_output"]) <= ATOL
    hidden = np.stack([h.numpy() for h in out["hidden_states"]])
    assert hidden.shape == ref["hidden_states"].shape
    assert max_diff(hidden, ref["hidden_states"]) <= ATOL


def test_pooled_output(loaded):
    name, encoder, ref = loaded
    out = encoder(reference_inputs(ref))
    if "pooled_output" in ref:
        assert encoder.pooler is not None
        assert max_diff(out["pooled_output"], ref["pooled_output"]) <= ATOL
    else:  # no pooler in the checkpoint: the first token's state
        assert encoder.pooler is None
        np.testing.assert_array_equal(out["pooled_output"], out["sequence_output"][:, 0])


def test_masked_lm_logits(loaded):
    name, encoder, ref = loaded
    if "mlm_logits" not in ref:
        assert encoder.lm_head is None
        return
    logits = encoder.masked_lm_logits(encoder(reference_inputs(ref))["sequence_output"])
    assert max_diff(logits, ref["mlm_logits"]) <= ATOL


def test_every_tensor_used(loaded):
    name, encoder, ref = loaded
    report = encoder.loading_report
    assert report.newly_initialized == []
    if name == "electra":  # the replaced-token-detection head is not part of the encoder
        assert report.unused and all(n.startswith("discriminator_predictions.") for n in report.unused)
    else:
        assert report.unused == []


def test_padding_does_not_change_real_positions(loaded):
    name, encoder, ref = loaded
    inputs = reference_inputs(ref)
    batch = encoder(inputs)["sequence_output"].numpy()
    pad_id = encoder.config.pad_token_id
    extra = {k: np.pad(v, ((0, 0), (0, 5)), constant_values=pad_id if k == "input_ids" else 0) for k, v in inputs.items()}
    more_padding = encoder(extra)["sequence_output"].numpy()
    for row, length in enumerate(inputs["attention_mask"].sum(axis=1)):
        alone = encoder({k: v[row : row + 1, :length] for k, v in inputs.items()})["sequence_output"].numpy()
        assert max_diff(batch[row, :length], alone[0]) <= ATOL
        assert max_diff(more_padding[row, :length], alone[0]) <= ATOL


def test_xla_matches(loaded):
    name, encoder, ref = loaded
    forward = tf.function(lambda x: encoder(x)["sequence_output"], jit_compile=True)
    assert max_diff(forward(reference_inputs(ref)), ref["sequence_output"]) <= ATOL
