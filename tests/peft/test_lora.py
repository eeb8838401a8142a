"""LoRA: which variables train, how many parameters, which modules a target list names."""

import numpy as np

import tfft
from tests.peft.helpers import ids, outputs, perturb, tiny_model
from tfft.peft import LoraConfig
from tfft.peft.lora import LoraModule
from tfft.peft.wrapper import SavedCopy

HIDDEN, LAYERS, NUM_LABELS = 32, 2, 3


def test_only_lora_kernels_and_the_head_copy_train(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    base_variables = list(model.weights)
    r = 4
    config = model.add_adapter("x", LoraConfig(r=r, lora_alpha=8, target_modules=["query", "value"]))
    assert config.target_modules == ["query", "value"] and config.modules_to_save == ["classifier"]
    modules = model._adapters.modules_of("x")
    lora_paths = sorted(path for path, m in modules.items() if isinstance(m, LoraModule))
    assert lora_paths == sorted(f"bert.encoder.layer.{i}.attention.self.{name}"
                                for i in range(LAYERS) for name in ("query", "value"))
    assert [path for path, m in modules.items() if isinstance(m, SavedCopy)] == ["classifier"]
    expected = [v for path in lora_paths for v in (modules[path].lora_A.kernel, modules[path].lora_B.kernel)]
    expected += modules["classifier"].weights
    assert ids(model.trainable_variables) == ids(expected)
    assert len(model.trainable_variables) == len(expected) == 4 * LAYERS + 2
    assert not any(v.trainable for v in base_variables)
    for path in lora_paths:
        assert tuple(modules[path].lora_A.kernel.shape) == (HIDDEN, r)
        assert tuple(modules[path].lora_B.kernel.shape) == (r, HIDDEN)
        np.testing.assert_array_equal(modules[path].lora_B.kernel.numpy(), 0)

    counts = model.trainable_parameters()
    head = HIDDEN * NUM_LABELS + NUM_LABELS
    assert counts["adapter"] == r * (HIDDEN + HIDDEN) * 2 * LAYERS
    assert counts["head"] == head
    assert counts["trainable"] == counts["adapter"] + head
    assert counts["trainable"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert counts["total"] == sum(int(np.prod(v.shape)) for v in model.weights)
    assert counts["base"] == sum(int(np.prod(v.shape)) for v in base_variables)
    assert counts["total"] == counts["base"] + counts["trainable"]


def test_print_trainable_parameters(tiny_checkpoint, capsys):
    model = tiny_model(tiny_checkpoint)
    model.print_trainable_parameters()
    plain = capsys.readouterr().out
    counts = model.trainable_parameters()
    assert f"trainable params: {counts['total']:,d} || all params: {counts['total']:,d}" in plain
    model.add_adapter("x", LoraConfig(r=4))
    model.print_trainable_parameters()
    lines = capsys.readouterr().out.splitlines()
    counts = model.trainable_parameters()
    assert lines[0] == (f"trainable params: {counts['trainable']:,d} || all params: {counts['total']:,d} || "
                        f"trainable%: {100 * counts['trainable'] / counts['total']:.4f}")
    assert lines[1].startswith(f"adapter params: {counts['adapter']:,d} (")
    assert lines[1].endswith(f"task head: {counts['head']}")


def test_target_modules_as_regex_and_as_names(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("regex", LoraConfig(r=2, target_modules=r"bert\.encoder\.layer\.1\.attention\.self\.(query|key)"))
    lora = [p for p, m in model._adapters.modules_of("regex").items() if isinstance(m, LoraModule)]
    assert lora == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.key"]
    # "dense" names every Dense called dense: attention outputs, feed-forward layers, the pooler.
    model.add_adapter("dense", LoraConfig(r=2, target_modules=["dense"]))
    lora = [p for p, m in model._adapters.modules_of("dense").items() if isinstance(m, LoraModule)]
    assert len(lora) == 3 * LAYERS + 1 and "bert.pooler.dense" in lora
    # The pooler's tanh comes after the LoRA update (as in peft, where it is a module of its own).
    model.set_adapter("dense")
    pooler = model._adapters.modules_of("dense")["bert.pooler.dense"]
    perturb([pooler.lora_B.kernel])
    x = np.random.default_rng(0).standard_normal((2, HIDDEN)).astype("float32")
    dense = model.encoder.pooler.dense.base_layer
    expected = np.tanh(x @ dense.kernel.numpy() + dense.bias.numpy()
                       + pooler.scaling * (x @ pooler.lora_A.kernel.numpy() @ pooler.lora_B.kernel.numpy()))
    np.testing.assert_allclose(model.encoder.pooler.dense(x).numpy(), expected, atol=1e-5)
    assert outputs(model, tiny_batch).shape == (3, NUM_LABELS)


def test_rslora_scaling(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("plain", LoraConfig(r=4, lora_alpha=8))
    model.add_adapter("rs", LoraConfig(r=4, lora_alpha=8, use_rslora=True))
    path = "bert.encoder.layer.0.attention.self.query"
    assert model._adapters.modules_of("plain")[path].scaling == 2.0
    assert model._adapters.modules_of("rs")[path].scaling == 4.0


def test_parameter_count_of_bert_base():
    """peft's count for LoRA r=8 on query and value of bert-base-uncased: 294,912."""
    from tfft.encoders import BertEncoder, EncoderConfig

    encoder = BertEncoder(EncoderConfig(model_type="bert", vocab_size=30522, hidden_size=768, num_layers=12,
                                        num_heads=12, intermediate_size=3072))
    model = tfft.SequenceClassifier(encoder, labels=["a", "b"])
    model.add_adapter("x", LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
    counts = model.trainable_parameters()
    assert counts["adapter"] == 294912
    assert counts["head"] == 768 * 2 + 2
    assert counts["trainable"] == 296450  # peft: trainable params: 296,450
    assert counts["base"] == 109483778  # BertForSequenceClassification, 2 labels
    assert counts["total"] == 109780228  # peft's all params: the head counted twice (its copy)
    assert counts["encoder"] == 109482240
