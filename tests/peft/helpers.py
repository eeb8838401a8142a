"""Shared helpers of the tfft.peft tests: tiny task models, their outputs, perturbed adapters."""

import keras
import numpy as np

LABELS = ["a", "b", "c"]


def tiny_model(checkpoint, cls=None, **kwargs):
    """A task model on the tiny random-init BERT, without its tokenizer (the tests feed token ids)."""
    import tfft

    cls = cls or tfft.SequenceClassifier
    if cls is tfft.SequenceClassifier or cls is tfft.TokenClassifier:
        kwargs.setdefault("labels", LABELS)
    return cls.from_pretrained(checkpoint, tokenizer=False, **kwargs)


def outputs(model, batch):
    """The model's inference outputs as one float32 array (QA's start and end logits stacked)."""
    out = model(batch, training=False)
    if isinstance(out, dict):
        out = np.stack([keras.ops.convert_to_numpy(out[k]) for k in sorted(out)])
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def perturb(variables, seed=0, scale=0.3):
    """Moves every variable by seeded noise (LoRA's B starts at zero, IA3's vectors at one, BitFit's
    deltas at zero: an untrained adapter changes nothing, so the tests train it this way)."""
    rng = np.random.default_rng(seed)
    for variable in variables:
        noise = rng.standard_normal(tuple(variable.shape)).astype("float32") * scale
        variable.assign(keras.ops.convert_to_numpy(variable) + noise)


def snapshot(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def adapted_layers(model):
    from tfft.peft.wrapper import AdaptedLayer

    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, AdaptedLayer)]


def assert_plain_model(model, num_weights=None):
    """No adapter wrapper is left and every weight trains again (the model as before its first adapter)."""
    assert adapted_layers(model) == []
    assert model.peft_config == {} and model.active_adapter is None
    assert all(v.trainable for v in model.weights)
    assert len(model.trainable_variables) == len(model.weights)
    if num_weights is not None:
        assert len(model.weights) == num_weights


def ids(variables):
    return {id(v) for v in variables}


def perturb_torch(model):
    """`perturb` for a torch model's trainable parameters (a peft model's adapter and head)."""
    import torch

    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.3)
