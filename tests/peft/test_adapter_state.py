"""Adapter state that must not go wrong quietly: loading next to a merged adapter, saving a
transformers checkpoint with adapters attached, and `fit` after the trainable set changed."""

import numpy as np
import pytest

from tests.peft.helpers import outputs, perturb, tiny_model
from tfft.peft import BitFitConfig, LoraConfig


def test_loading_next_to_a_merged_adapter_reads_biases_against_the_base(tiny_checkpoint, tiny_batch, tmp_path):
    source = tiny_model(tiny_checkpoint)
    source.add_adapter("b", BitFitConfig())
    perturb(source.trainable_variables)
    expected = outputs(source, tiny_batch)
    source.save_adapter(tmp_path)

    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", BitFitConfig())
    perturb(model.trainable_variables, seed=1)
    model.merge_adapter()
    model.load_adapter(tmp_path, name="b")
    assert model._adapters.merged  # still merged, as before the load
    model.set_adapter("b")
    np.testing.assert_allclose(outputs(model, tiny_batch), expected, atol=1e-6)


def test_save_pretrained_with_adapters_attached_is_refused(tiny_checkpoint, tmp_path):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", LoraConfig(r=2))
    with pytest.raises(ValueError, match="merge_and_unload"):
        model.save_pretrained(tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    model.merge_and_unload()
    model.save_pretrained(tmp_path / "hf")


def test_fit_after_switching_adapters_asks_to_compile_again(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", LoraConfig(r=2))
    model.add_adapter("b", BitFitConfig())
    labels = np.zeros(len(tiny_batch["input_ids"]), dtype=np.int32)
    model.compile(optimizer="adam")
    model.fit(tiny_batch, labels, epochs=1, verbose=0)
    model.set_adapter("b")
    with pytest.raises(ValueError, match="compile the model again"):
        model.fit(tiny_batch, labels, epochs=1, verbose=0)
    model.compile(optimizer="adam")
    model.fit(tiny_batch, labels, epochs=1, verbose=0)
