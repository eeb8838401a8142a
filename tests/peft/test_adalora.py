"""AdaLoRA: the SVD-form update, its rank schedule run by plain `fit`, the importance and the
orthogonality term as peft computes them, files both ways with Hugging Face PEFT, bad configs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

import tfft
from tests.peft.helpers import ids, perturb, perturb_torch, snapshot
from tests.peft.test_hf_peft_interop import (  # noqa: F401  (hf_dirs: the tiny transformers BERTs)
    IDS as HF_IDS, MASK as HF_MASK, TYPES as HF_TYPES, _hf_base, _perturb_tfft, _tfft_logits,
    _tfft_model, _torch_logits, hf_dirs,
)
from tfft.errors import ConfigError
from tfft.peft import AdaLoraConfig, parse_peft_config
from tfft.peft.adalora import AdaLoraModule, budget_schedule

HIDDEN, LAYERS, INIT_R, TARGET_R = 32, 2, 4, 2
MODULES = [f"bert.encoder.layer.{i}.attention.self.{name}" for i in range(LAYERS) for name in ("query", "value")]
IDS = np.array([[2, 5, 7, 9, 3, 0], [2, 11, 13, 3, 0, 0], [2, 40, 3, 0, 0, 0]], dtype=np.int32)
BATCH = {"input_ids": IDS, "attention_mask": (IDS != 0).astype(np.int32)}
LABELS = np.array([0, 1, 2])
SMALL = {"init_r": INIT_R, "target_r": TARGET_R, "total_step": 10}
# Full rank to step 2, the cubic fall over steps 3-6, frozen at step 7, trained so to step 9.
SCHEDULE = {**SMALL, "tinit": 2, "tfinal": 3}


def _model(cls=tfft.SequenceClassifier, dtype=None, seed=0):
    """A tiny random-init BERT task model without dropout, so training forwards are inference forwards."""
    from tfft.encoders import BertEncoder, EncoderConfig

    keras.utils.set_random_seed(seed)
    config = EncoderConfig(model_type="bert", vocab_size=64, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=4,
                           intermediate_size=64, hidden_dropout=0.0, attention_dropout=0.0)
    kwargs = {"labels": ["a", "b", "c"]} if cls is not tfft.QuestionAnswerer else {}
    return cls(BertEncoder(config, dtype=dtype), dropout=0.0, dtype=dtype, **kwargs)


def _logits(model, batch=BATCH):
    out = model(batch, training=False)
    if isinstance(out, dict):
        out = np.stack([keras.ops.convert_to_numpy(out[k]) for k in sorted(out)])
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def _modules(model, name="default"):
    return {p: m for p, m in model._adapters.modules_of(name).items() if isinstance(m, AdaLoraModule)}


def _numpy(module):
    """A, E, B in peft's layout: [r, in], [r], [out, r]."""
    return module.lora_A.kernel.numpy().T, module.lora_E.numpy(), module.lora_B.kernel.numpy().T


def _orthogonality(modules, weight):
    norms = []
    for m in modules.values():
        a, _, b = _numpy(m)
        eye = np.eye(a.shape[0])
        norms += [np.linalg.norm(a @ a.T - eye), np.linalg.norm(b.T @ b - eye)]
    return weight * np.mean(norms)


def _cross_entropy(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def test_untrained_adapter_is_the_base_model_and_counts_init_r_per_module(tmp_path):
    model = _model()
    base = _logits(model)
    config = model.add_adapter("default", AdaLoraConfig(**SMALL))
    assert config.target_modules == ["attention.self.query", "attention.self.value"]
    modules = _modules(model)
    assert sorted(modules) == sorted(MODULES)
    np.testing.assert_array_equal(_logits(model), base)  # E starts at zero
    for m in modules.values():
        a, e, b = _numpy(m)
        assert a.shape == (INIT_R, HIDDEN) and e.shape == (INIT_R,) and b.shape == (HIDDEN, INIT_R)
        np.testing.assert_array_equal(e, 0)
        assert 0.01 < a.std() < 0.03 and 0.01 < b.std() < 0.03  # peft's normal(0, 0.02)
        assert m.ranknum == INIT_R and m.scaling == 8

    counts = model.trainable_parameters()
    assert counts["adapter"] == len(MODULES) * INIT_R * (HIDDEN + HIDDEN + 1)
    assert counts["total"] == counts["base"] + counts["trainable"]
    expected = [v for m in modules.values() for v in (m.lora_A.kernel, m.lora_E, m.lora_B.kernel)]
    head = model._adapters.modules_of("default")["classifier"]
    assert ids(model.trainable_variables) == ids(expected + head.weights)
    assert not any(v.trainable for m in modules.values() for v in m.state_variables)

    perturb(model.trainable_variables)
    out = _logits(model)
    assert not np.allclose(out, base, atol=1e-3)
    with model.disable_adapters():
        np.testing.assert_array_equal(_logits(model), base)
    # The update is peft's: base(x) + x (A*E)^T B^T scaling / (ranknum + 1e-5), merged or not.
    m = modules[MODULES[0]]
    a, e, b = _numpy(m)
    x = np.random.default_rng(0).standard_normal((2, HIDDEN)).astype("float32")
    wrapper = model._adapters.wrappers[MODULES[0]]
    dense = wrapper.base_layer
    expected = x @ dense.kernel.numpy() + dense.bias.numpy() + (x @ (a * e[:, None]).T @ b.T) * 8 / (INIT_R + 1e-5)
    np.testing.assert_allclose(wrapper(x).numpy(), expected, atol=1e-5)
    model.merge_adapter()
    np.testing.assert_allclose(_logits(model), out, atol=1e-5)
    model.unmerge_adapter()

    model.save_adapter(tmp_path)
    fresh = _model()
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(_logits(fresh), out)
    assert fresh.peft_config["default"].rank_pattern is None


def test_a_rank_pattern_keeps_its_triplets_in_the_file_down_to_rank_zero(tmp_path):
    pattern = {f"{MODULES[0]}.lora_E": [False] * INIT_R, f"{MODULES[1]}.lora_E": [True, False, True, False]}
    model = _model()
    model.add_adapter("default", AdaLoraConfig(**SMALL, rank_pattern=pattern))
    perturb(model.trainable_variables)
    for m in _modules(model).values():
        m.keep(m.rank_mask > 0)  # as training leaves them: the masked singular values are zero
    out = _logits(model)
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    ranks = [tensors[f"base_model.model.{p}.lora_E"].shape[0] for p in MODULES]
    assert ranks == [0, 2, INIT_R, INIT_R]
    assert tensors[f"base_model.model.{MODULES[0]}.lora_A"].shape == (0, HIDDEN)
    assert tensors[f"base_model.model.{MODULES[1]}.lora_B"].shape == (HIDDEN, 2)
    fresh = _model()
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(_logits(fresh), out)
    a, e, b = _numpy(_modules(fresh)[MODULES[1]])
    assert not e[[1, 3]].any() and not a[[1, 3]].any() and not b[:, [1, 3]].any()


def _fit(model, steps):
    """Plain `fit` for `steps` optimizer steps on BATCH; returns, after each step, every module's
    kept rank (its mask), its non-zero singular values, and the importance EMAs' largest value."""
    modules = list(_modules(model).values())
    after_step = []

    def state():
        return {"kept": [int(m.kept().sum()) for m in modules],
                "nonzero": [int(np.count_nonzero(m.lora_E.numpy())) for m in modules],
                "masks": [m.kept().tolist() for m in modules],
                "importance": max(float(np.abs(v.numpy()).max()) for m in modules for v in m.state_variables[:-1])}

    class Recorder(keras.callbacks.Callback):  # before the AdaLoRA callback, which fit adds last
        def on_train_batch_begin(self, batch, logs=None):
            if batch:
                after_step.append(state())

        def on_train_end(self, logs=None):
            after_step.append(state())

    dataset = tf.data.Dataset.from_tensors((BATCH, LABELS)).repeat(steps)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[Recorder()])
    return after_step


def test_fit_follows_the_budget_schedule_and_ends_at_the_target_rank(tmp_path, caplog):
    model = _model()
    model.add_adapter("default", AdaLoraConfig(**SCHEDULE))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    with caplog.at_level("INFO", logger="tfft"):
        after = _fit(model, SCHEDULE["total_step"])
    n, init, target = len(MODULES), len(MODULES) * INIT_R, len(MODULES) * TARGET_R
    config = AdaLoraConfig(**SCHEDULE)
    budgets = [budget_schedule(config, step, init, target)[0] for step in range(10)]
    # peft's cubic schedule: full rank to tinit, int((init - target) (1 - (t - tinit) / 5)^3 + target) after.
    assert budgets == [16, 16, 16, 12, 9, 8, 8, 8, 8, 8]
    assert [sum(s["kept"]) for s in after] == budgets
    for step in (3, 4, 5, 6):  # masked at this step: exactly the kept singular values are non-zero
        assert after[step]["nonzero"] == after[step]["kept"]
    assert after[0]["nonzero"] == [INIT_R] * n  # E moves off zero at the first step
    frozen = after[7]["masks"]
    assert all(s["masks"] == frozen and s["nonzero"] == s["kept"] for s in after[7:])
    assert after[7]["importance"] == after[9]["importance"] == 0.0  # cleared at the freeze, not updated after
    assert after[6]["importance"] > 0

    pattern = model.peft_config["default"].rank_pattern
    assert sorted(pattern) == sorted(f"{p}.lora_E" for p in MODULES)
    assert sum(map(sum, pattern.values())) == target
    assert "AdaLoRA ranks of adapter 'default': 8 in all (target 8" in caplog.text
    out = _logits(model)
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    prefix = "base_model.model."
    for path, kept in pattern.items():
        module = path.removesuffix(".lora_E")
        rank = sum(kept)
        assert tensors[f"{prefix}{module}.lora_A"].shape == (rank, HIDDEN)
        assert tensors[f"{prefix}{module}.lora_E"].shape == (rank, 1)
        assert tensors[f"{prefix}{module}.lora_B"].shape == (HIDDEN, rank)
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    assert written["peft_type"] == "ADALORA" and written["rank_pattern"] == pattern
    fresh = _model()
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(_logits(fresh), out)
    assert fresh.peft_config["default"].rank_pattern == pattern
    model.save(tmp_path / "model.keras")  # Keras saving keeps the pattern and the importance state
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(_logits(loaded), out)
    assert loaded.peft_config == model.peft_config
    for mine, theirs in zip(_modules(model).values(), _modules(loaded).values()):
        for a, b in zip(mine.state_variables, theirs.state_variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh.merge_and_unload()
    np.testing.assert_allclose(_logits(fresh), out, atol=1e-5)


def test_orthogonality_term_is_in_the_training_loss():
    model = _model()
    model.add_adapter("default", AdaLoraConfig(**SMALL, orth_reg_weight=0.3))
    perturb(model.trainable_variables)
    expected = _cross_entropy(_logits(model), LABELS) + _orthogonality(_modules(model), 0.3)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    loss = model.train_on_batch(BATCH, LABELS, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_importance_is_peft_ema_of_weight_times_gradient():
    """One step from a non-zero state, recomputed from a gradient of the cross-entropy plus the
    orthogonality term taken apart from the train step: so the term is in the differentiated loss."""
    model = _model()
    config = model.add_adapter("default", AdaLoraConfig(**SMALL, beta1=0.8, beta2=0.7))
    perturb(model.trainable_variables)
    modules = _modules(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.train_on_batch(BATCH, LABELS)
    parameters = [p for m in modules.values() for p in m.parameters()]
    averages = [pair for m in modules.values() for pair in m.averages]
    before, previous = snapshot(parameters), [snapshot(pair) for pair in averages]
    with tf.GradientTape() as tape:
        logits = model(BATCH, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, logits)
        norms = [keras.ops.norm(keras.ops.matmul(keras.ops.transpose(a), a) - keras.ops.eye(INIT_R))
                 for m in modules.values() for a in (m.lora_A.kernel, keras.ops.transpose(m.lora_B.kernel))]
        loss = loss + 0.5 * keras.ops.mean(keras.ops.stack(norms))
    grads = [g.numpy() for g in tape.gradient(loss, parameters)]
    model.train_on_batch(BATCH, LABELS)
    for p, p0, g, (ipt, unc), (ipt0, unc0) in zip(parameters, before, grads, averages, previous):
        np.testing.assert_allclose(p.numpy(), p0 - 0.1 * g, rtol=1e-5, atol=1e-7)
        sensitivity = np.abs(p.numpy() * g)  # peft: after optimizer.step(), the updated weight
        expected_ipt = config.beta1 * ipt0 + (1 - config.beta1) * sensitivity
        expected_unc = config.beta2 * unc0 + (1 - config.beta2) * np.abs(sensitivity - expected_ipt)
        np.testing.assert_allclose(ipt.numpy(), expected_ipt, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(unc.numpy(), expected_unc, rtol=1e-4, atol=1e-9)
    m = modules[MODULES[0]]
    (ia, ua), (ie, ue), (ib, ub) = ([v.numpy() for v in pair] for pair in m.averages)
    expected_scores = ie * ue + (ia * ua).mean(axis=0) + (ib * ub).mean(axis=1)  # Keras layout: A [in, r]
    np.testing.assert_allclose(m.triplet_scores().numpy(), expected_scores, rtol=1e-6)


def test_mixed_float16_importance_sees_unscaled_gradients_and_skips_overflow():
    from tfft.training.optimizers import AdamW, LossScaleOptimizer

    model = _model(dtype="mixed_float16")
    model.add_adapter("default", AdaLoraConfig(**SMALL))
    perturb(model.trainable_variables)
    modules = _modules(model)
    optimizer = LossScaleOptimizer(AdamW(1e-3, weight_decay=0.0), initial_scale=2.0**40)
    model.compile(optimizer=optimizer)
    model.train_on_batch(BATCH, LABELS)  # the scaled loss overflows float16: the step is skipped
    assert int(optimizer.iterations) == 0 and float(optimizer.dynamic_scale) == 2.0**39
    assert all(not v.numpy().any() for m in modules.values() for v in m.state_variables[:-1])

    optimizer.dynamic_scale.assign(2.0**10)
    m = modules[MODULES[0]]
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, model(BATCH, training=True))
    grad = tape.gradient(loss, m.lora_E).numpy()
    model.train_on_batch(BATCH, LABELS)
    assert int(optimizer.iterations) == 1
    sensitivity = (1 - 0.85) * np.abs(m.lora_E.numpy() * grad)
    np.testing.assert_allclose(m.averages[1][0].numpy().sum(), sensitivity.sum(), rtol=5e-2)


@pytest.mark.parametrize("cls", [tfft.TokenClassifier, tfft.QuestionAnswerer])
def test_per_token_heads_train_to_the_target_rank(cls):
    model = _model(cls)
    model.add_adapter("default", {"method": "adalora", **SCHEDULE})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    labels = {"start_logits": np.array([1, 2, 0]), "end_logits": np.array([3, 2, 0])} if cls is tfft.QuestionAnswerer \
        else np.array([[0, 1, 2, 0, 1, 2]] * 3)
    dataset = tf.data.Dataset.from_tensors((BATCH, labels)).repeat(SCHEDULE["total_step"])
    model.fit(dataset, verbose=0, shuffle=False)
    assert sum(map(sum, model.peft_config["default"].rank_pattern.values())) == len(MODULES) * TARGET_R
    out = _logits(model)
    model.merge_and_unload()
    np.testing.assert_allclose(_logits(model), out, atol=1e-5)


BAD = [
    ({}, r"'peft\.total_step' is required"),
    ({"total_step": 0}, r"'peft\.total_step' must be a positive integer"),
    ({"total_step": 10, "tinit": 5, "tfinal": 5}, r"'peft\.tinit' \(5\) must be below .* no budgeting phase"),
    ({"total_step": 10, "init_r": 4, "target_r": 6}, r"'peft\.target_r' \(6\) must be at most peft\.init_r"),
    ({"total_step": 10, "init_r": 0}, r"'peft\.init_r' must be a positive integer"),
    ({"total_step": 10, "init_r": "4"}, r"'peft\.init_r' must be int"),
    ({"total_step": 10, "deltaT": 0}, r"'peft\.deltaT' must be a positive integer"),
    ({"total_step": 10, "tfinal": -1}, r"'peft\.tfinal' must be a non-negative integer"),
    ({"total_step": 10, "beta1": 1.0}, r"'peft\.beta1' must be in \(0, 1\)"),
    ({"total_step": 10, "beta2": 0}, r"'peft\.beta2' must be in \(0, 1\)"),
    ({"total_step": 10, "orth_reg_weight": -0.1}, r"'peft\.orth_reg_weight' must be >= 0"),
    ({"total_step": 10, "lora_dropout": 1.0}, r"'peft\.lora_dropout'"),
    ({"total_step": 10, "rank_pattern": {"x.lora_E": [True]}},
     r"'peft\.rank_pattern' entry 'x\.lora_E' must be a list of 12"),
    ({"total_step": 10, "r": 8}, r"unknown key 'peft\.r'"),
]


@pytest.mark.parametrize("values, message", BAD, ids=[next(iter(v), "empty") + str(i) for i, (v, _) in enumerate(BAD)])
def test_bad_config_is_a_config_error_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_peft_config({"method": "adalora", **values}, "run.yaml")


def test_rank_pattern_naming_no_module_is_refused_and_changes_nothing():
    model = _model()
    num_weights = len(model.weights)
    pattern = {f"{MODULES[0]}.lora_E": [True] * 12, "bert.encoder.layer.0.attention.self.key.lora_E": [True] * 12}
    with pytest.raises(ConfigError, match=r"'peft\.rank_pattern': '.*self\.key\.lora_E' names no module"):
        model.add_adapter("default", AdaLoraConfig(total_step=10, rank_pattern=pattern))
    assert model.peft_config == {} and len(model.weights) == num_weights


def test_yaml_peft_section():
    from tfft.config import config_from_dict

    config = config_from_dict({"run_dir": "r", "model": {"checkpoint": "x"}, "data": {"train": "t"},
                               "peft": {"method": "adalora", "total_step": 500, "tinit": 50, "tfinal": 100}})
    assert isinstance(config.peft, AdaLoraConfig) and config.peft.total_step == 500 and config.peft.init_r == 12
    assert config.to_dict()["peft"]["method"] == "adalora"


# --- Hugging Face PEFT reads tfft's AdaLoRA files and tfft reads peft's (torch and peft) ----------

HF_SCHEDULE = {"init_r": 4, "target_r": 2, "total_step": 6, "tinit": 1, "tfinal": 2, "lora_alpha": 8}


def _assert_close(actual, expected):
    difference = float(np.max(np.abs(actual - expected)))
    assert difference < 1e-4, difference


def _assert_pruned(pattern):
    assert pattern and not all(all(kept) for kept in pattern.values())
    assert sum(map(sum, pattern.values())) == 4 * HF_SCHEDULE["target_r"]


@pytest.mark.requires("torch", "peft")
def test_peft_adalora_files_load_in_tfft(hf_dirs, tmp_path):
    """Before training (full rank) and after peft's own loop pruned it (`update_and_allocate`)."""
    import peft
    import torch

    peft_model = peft.get_peft_model(_hf_base(hf_dirs, "seq"), peft.AdaLoraConfig(task_type="SEQ_CLS", **HF_SCHEDULE))
    perturb_torch(peft_model)
    peft_model.save_pretrained(tmp_path / "full")
    expected = {"full": _torch_logits(peft_model, "seq")}
    optimizer = torch.optim.SGD(peft_model.parameters(), lr=0.05)
    inputs = {"input_ids": torch.tensor(HF_IDS, dtype=torch.long), "attention_mask": torch.tensor(HF_MASK),
              "token_type_ids": torch.tensor(HF_TYPES, dtype=torch.long), "labels": torch.tensor([0, 1, 2])}
    peft_model.train()
    for step in range(HF_SCHEDULE["total_step"]):
        peft_model(**inputs).loss.backward()
        optimizer.step()
        peft_model.base_model.update_and_allocate(step)
        optimizer.zero_grad()
    _assert_pruned(peft_model.peft_config["default"].rank_pattern)
    peft_model.save_pretrained(tmp_path / "pruned")
    expected["pruned"] = _torch_logits(peft_model, "seq")

    for name, logits in expected.items():
        model = _tfft_model(hf_dirs, "seq")
        model.load_adapter(tmp_path / name)
        _assert_close(_tfft_logits(model), logits)
        model.merge_adapter()
        _assert_close(_tfft_logits(model), logits)
    assert model.peft_config["default"].rank_pattern == json.loads(
        (tmp_path / "pruned" / "adapter_config.json").read_text())["rank_pattern"]


@pytest.mark.requires("torch", "peft")
def test_tfft_adalora_files_load_in_peft(hf_dirs, tmp_path):
    """Perturbed at full rank, then pruned by plain `fit`."""
    import peft

    model = _tfft_model(hf_dirs, "seq")
    model.add_adapter("default", {"method": "adalora", **HF_SCHEDULE})
    _perturb_tfft(model)
    batch = {"input_ids": HF_IDS, "attention_mask": HF_MASK, "token_type_ids": HF_TYPES}
    model.save_adapter(tmp_path / "full")
    expected = {"full": _tfft_logits(model)}
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensors((batch, LABELS)).repeat(HF_SCHEDULE["total_step"]), verbose=0,
              shuffle=False)
    pattern = model.peft_config["default"].rank_pattern
    _assert_pruned(pattern)
    model.save_adapter(tmp_path / "pruned")
    expected["pruned"] = _tfft_logits(model)

    for name, logits in expected.items():
        peft_model = peft.PeftModel.from_pretrained(_hf_base(hf_dirs, "seq"), tmp_path / name)
        _assert_close(_torch_logits(peft_model, "seq"), logits)
        _assert_close(_torch_logits(peft_model.merge_and_unload(), "seq"), logits)
    assert peft_model.peft_config["default"].rank_pattern == pattern
    # peft counts the same trainable parameters; its total also holds one `ranknum` per module.
    trainable, total = peft.get_peft_model(_hf_base(hf_dirs, "seq"), peft.AdaLoraConfig(
        task_type="SEQ_CLS", **HF_SCHEDULE)).get_nb_trainable_parameters()
    counts = model.trainable_parameters()
    assert counts["trainable"] == trainable and counts["total"] + 4 == total
