"""Prefix tuning, prompt tuning and P-tuning: the encoder's virtual tokens on every architecture and
task head, the adapter state and files, training, bad configs, and Hugging Face PEFT interop both
ways (those marked `requires("torch", "peft")` run in the optional-modules subprocess)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

import tfft
from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tests.peft.helpers import LABELS, assert_plain_model, ids, outputs, perturb, perturb_torch, snapshot, tiny_model
from tfft.config import load_config
from tfft.errors import CheckpointError, ConfigError
from tfft.peft import LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

H, LAYERS, HEADS = 32, 2, 4  # the tiny BERT
HEAD = H * len(LABELS) + len(LABELS)


def lstm(inputs, hidden):  # torch.nn.LSTM's parameters, one layer and direction
    return 4 * hidden * (inputs + hidden) + 8 * hidden


# name -> (config, the method's own parameters, prompt_embeddings' width)
CONFIGS = {
    "prefix": (PrefixTuningConfig(num_virtual_tokens=3), 3 * LAYERS * 2 * H, LAYERS * 2 * H),
    "prefix_projection": (PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=8),
                          3 * H + (H * 8 + 8) + (8 * LAYERS * 2 * H + LAYERS * 2 * H), LAYERS * 2 * H),
    "prompt": (PromptTuningConfig(num_virtual_tokens=4, prompt_tuning_init="SAMPLE_VOCAB"), 4 * H, H),
    "p_tuning": (PromptEncoderConfig(num_virtual_tokens=3, encoder_hidden_size=8),
                 3 * H + (H * 8 + 8) + (8 * 8 + 8) + (8 * H + H), H),
    "p_tuning_lstm": (PromptEncoderConfig(num_virtual_tokens=3, encoder_hidden_size=8,
                                          encoder_reparameterization_type="LSTM"),
                      3 * H + 2 * lstm(H, 8) + 2 * lstm(16, 8) + (16 * 16 + 16) + (16 * H + H), H),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_adapter_state_files_and_keras_round_trip(tiny_checkpoint, tiny_batch, tmp_path, name):
    config, own, width = CONFIGS[name]
    model = tiny_model(tiny_checkpoint)
    base, num_weights = outputs(model, tiny_batch), len(model.weights)
    resolved = model.add_adapter("x", config)
    assert (resolved.token_dim, resolved.num_layers, resolved.num_attention_heads) == (width if "prefix" not in name
                                                                                       else H, LAYERS, HEADS)
    counts = model.trainable_parameters()
    assert (counts["adapter"], counts["head"], counts["trainable"]) == (own, HEAD, own + HEAD)
    assert counts["trainable"] == sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    out = outputs(model, tiny_batch)
    assert not np.allclose(out, base, atol=1e-4)  # virtual tokens change the outputs from the start
    with model.disable_adapters():
        np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    model.merge_adapter()  # nothing to merge: the virtual tokens keep running
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    model.unmerge_adapter()
    with pytest.raises(ConfigError, match="cannot merge"):
        model.merge_and_unload()

    model.save_adapter(tmp_path / "adapter")
    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert {k: v.shape for k, v in tensors.items()} == {  # peft's names: no `model.` for prompt learning
        "prompt_embeddings": (config.num_virtual_tokens, width),
        "base_model.classifier.weight": (len(LABELS), H), "base_model.classifier.bias": (len(LABELS),)}
    written = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert written["peft_type"] == type(config).peft_type and written["inference_mode"] is True
    assert written["num_virtual_tokens"] == config.num_virtual_tokens and written["token_dim"] == resolved.token_dim
    fresh = tiny_model(tiny_checkpoint)
    fresh.load_adapter(tmp_path / "adapter")  # a reparameterization comes back folded, as in peft
    np.testing.assert_allclose(outputs(fresh, tiny_batch), out, atol=1e-6)
    assert fresh.trainable_parameters()["adapter"] == config.num_virtual_tokens * width

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(outputs(loaded, tiny_batch), out)
    assert loaded.peft_config == {"x": resolved}
    model.delete_adapter("x")
    assert_plain_model(model, num_weights)
    assert model.encoder.virtual_tokens is None
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)


ARCHITECTURES = ["bert", "roberta", "xlm_roberta", "distilbert", "electra", "albert"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("config", [PrefixTuningConfig(num_virtual_tokens=3), PromptTuningConfig(num_virtual_tokens=3)],
                         ids=["prefix", "prompt"])
def test_every_architecture_pads_and_disables_exactly(architecture, config):
    """The real tokens' outputs do not depend on padding (positions, masks); disabled, the encoder
    gives transformers' outputs. ALBERT's prompts have its embedding width, 16."""
    ref = reference(architecture)
    inputs = reference_inputs(ref)
    model = tfft.SequenceClassifier.from_pretrained(ENCODER_FIXTURES / architecture, labels=LABELS, tokenizer=False)
    model.add_adapter("x", config)
    with model.disable_adapters():
        np.testing.assert_allclose(model.encoder(inputs)["sequence_output"], ref["sequence_output"], atol=1e-5)
    pad = int(ref["input_ids"][-1, -1])  # the last row is padded
    padded = {k: np.pad(v, ((0, 0), (0, 3)), constant_values=pad if k == "input_ids" else 0) for k, v in inputs.items()}
    batch = model.encoder(padded, output_hidden_states=True)
    assert batch["sequence_output"].shape == padded["input_ids"].shape + (ref["sequence_output"].shape[-1],)
    assert len(batch["hidden_states"]) == len(ref["hidden_states"])
    for row, length in enumerate(inputs["attention_mask"].sum(axis=1)):
        alone = model.encoder({k: v[row : row + 1, :length] for k, v in inputs.items()})
        np.testing.assert_allclose(batch["sequence_output"][row, :length], alone["sequence_output"][0], atol=2e-5)
        np.testing.assert_allclose(batch["pooled_output"][row], alone["pooled_output"][0], atol=2e-5)


def test_prompt_tuned_token_classifier_tags_raw_text(tiny_checkpoint):
    """Entities come with character offsets into the text, from predict_texts and from the in-graph serving
    function alike: the outputs are the real tokens', the virtual ones dropped."""
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    model = tfft.TokenClassifier.from_pretrained(tiny_checkpoint, labels=labels)
    model.add_adapter("x", PromptTuningConfig(num_virtual_tokens=4))
    head = model._adapters.modules_of("x")["classifier"].copy
    head.kernel.assign(np.random.default_rng(3).normal(0, 2.0, head.kernel.shape).astype("float32"))
    texts = ["Barack Obama visited São Paulo, then Zürich!", "paris paris london berlin"]
    batch = model.tokenizer(texts)
    assert model(batch).shape == batch["input_ids"].shape + (len(labels),)
    expected = model.predict_texts(texts)
    assert sum(len(e) for e in expected) >= 2
    endpoints, _ = model.serving_signatures(max_length=64)
    served = {k: v.numpy() for k, v in endpoints["serving_default"][0](tf.constant(texts)).items()}
    for row, (text, entities) in enumerate(zip(texts, expected)):
        for entity in entities:
            assert text[entity["start"] : entity["end"]] == entity["text"]
        got = [(int(served["entity_starts"][row][k]), int(served["entity_ends"][row][k]),
                served["entity_texts"][row][k].decode()) for k in range(served["num_entities"][row])]
        assert got == [(e["start"], e["end"], e["text"]) for e in entities]


def test_prompt_tuned_question_answerer_answers_spans_of_the_context(tiny_checkpoint):
    model = tfft.QuestionAnswerer.from_pretrained(tiny_checkpoint)
    model.add_adapter("x", PromptTuningConfig(num_virtual_tokens=4))
    questions = ["Where is the tower?", "Who built it?"]
    contexts = ["The Eiffel Tower is in Paris, France.", "Gustave Eiffel's company built the tower in 1889."]
    endpoints, _ = model.serving_signatures(max_length=64)
    served = endpoints["serving_default"][0](tf.constant(questions), tf.constant(contexts))
    answers = model.predict_answers(questions, contexts, max_length=64, doc_stride=32)
    for row, (answer, context) in enumerate(zip(answers, contexts)):
        assert answer["answer"] and context[answer["start"] : answer["end"]] == answer["answer"]
        start, end = int(served["answer_start"][row]), int(served["answer_end"][row])
        assert (start, end) == (answer["start"], answer["end"])
        assert served["answer"][row].numpy().decode() == answer["answer"]


@pytest.mark.parametrize("name, jit_compile, dtype", [("prefix", True, None), ("prompt", True, None),
                                                      ("p_tuning_lstm", False, "mixed_bfloat16")])
def test_fit_trains_only_the_virtual_tokens_and_the_head_copy(tiny_checkpoint, tiny_batch, name, jit_compile, dtype):
    model = tiny_model(tiny_checkpoint, **({"dtype": dtype} if dtype else {}))
    model.add_adapter("x", CONFIGS[name][0])
    modules = model._adapters.modules_of("x")
    trained = [v for m in modules.values() for v in m.weights]
    assert ids(model.trainable_variables) == ids(trained)
    frozen = [v for v in model.weights if id(v) not in ids(trained)]
    before, frozen_before = snapshot(trained), snapshot(frozen)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    model.fit(dict(tiny_batch), np.array([0, 1, 2]), batch_size=3, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, snapshot(trained)))
    for a, b in zip(frozen_before, snapshot(frozen)):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(outputs(model, tiny_batch)).all()


def test_prompt_text_init_and_its_keras_round_trip(tiny_checkpoint, tmp_path):
    """TEXT: the embeddings of the text's tokens (special tokens included), repeated to the length;
    the tokenizer's directory is recorded, and a `.keras` archive reloads without it."""
    import shutil

    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "base")
    model = tfft.SequenceClassifier.from_pretrained(checkpoint, labels=LABELS)
    config = model.add_adapter("x", PromptTuningConfig(num_virtual_tokens=7, prompt_tuning_init="TEXT",
                                                       prompt_tuning_init_text="hello world"))
    token_ids = model.tokenizer.hf_tokenizer("hello world")["input_ids"]
    assert 2 < len(token_ids) < 7 and token_ids[0] == model.tokenizer.cls_token_id
    assert config.tokenizer_name_or_path == str(checkpoint)
    words = model.encoder.embeddings.word_embeddings.embeddings.numpy()
    np.testing.assert_array_equal(model._adapters.modules_of("x")["prompt_encoder"].embedding.numpy(),
                                  words[(token_ids * 2)[:7]])
    batch = model.tokenizer(["a fine film", "dull"])
    out = outputs(model, batch)
    model.save(tmp_path / "model.keras")
    shutil.rmtree(checkpoint)
    np.testing.assert_array_equal(outputs(keras.saving.load_model(tmp_path / "model.keras"), batch), out)


def test_several_adapters_coexist(tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    base = outputs(model, tiny_batch)
    model.add_adapter("p", PromptTuningConfig(num_virtual_tokens=3))
    out_p = outputs(model, tiny_batch)
    model.add_adapter("q", PrefixTuningConfig(num_virtual_tokens=2))
    model.add_adapter("l", LoraConfig(r=2))
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_p)
    model.set_adapter("q")
    out_q = outputs(model, tiny_batch)
    assert ids(model.trainable_variables) == ids(v for m in model._adapters.modules_of("q").values() for v in m.weights)
    model.set_adapter("l")  # LoRA, untrained: the base exactly
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    model.save_adapter(tmp_path, name="p")
    model.delete_adapter("p")
    model.set_adapter("q")
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_q)
    model.load_adapter(tmp_path, name="p2")
    model.set_adapter("p2")
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_p)
    for name in ("q", "p2"):
        model.delete_adapter(name)
    assert model.encoder.virtual_tokens is None
    model.delete_adapter("l")
    assert_plain_model(model)


BAD_CONFIGS = [
    (PrefixTuningConfig(), r"'peft\.num_virtual_tokens' is required"),
    (PromptTuningConfig(num_virtual_tokens=0), r"'peft\.num_virtual_tokens' must be a positive integer"),
    (PrefixTuningConfig(num_virtual_tokens=2, token_dim=16), r"'peft\.token_dim' is 16, but this SequenceClassifier "
                                                             r"on BertEncoder has 32"),
    (PromptEncoderConfig(num_virtual_tokens=2, num_layers=3), r"'peft\.num_layers' is 3"),
    (PrefixTuningConfig(num_virtual_tokens=2, init_weights="one"), r"'peft\.init_weights'"),
    (PromptTuningConfig(num_virtual_tokens=2, prompt_tuning_init="WORDS"),
     r"'peft\.prompt_tuning_init' must be one of"),
    (PromptTuningConfig(num_virtual_tokens=2, prompt_tuning_init="TEXT"), r"'peft\.prompt_tuning_init_text'"),
    (PromptTuningConfig(num_virtual_tokens=2, prompt_tuning_init="TEXT", prompt_tuning_init_text="hi"),
     r"'peft\.prompt_tuning_init' TEXT .* this model has none"),
    (PromptTuningConfig(num_virtual_tokens=2, tokenizer_kwargs={"x": 1}), r"'peft\.tokenizer_kwargs'"),
    (PromptEncoderConfig(num_virtual_tokens=2, encoder_reparameterization_type="GRU"),
     r"'peft\.encoder_reparameterization_type'"),
    (PromptEncoderConfig(num_virtual_tokens=2, encoder_dropout=1.0), r"'peft\.encoder_dropout'"),
    ({"method": "prompt_tuning", "num_virtual_token": 4}, r"unknown key 'peft\.num_virtual_token'"),
    ({"method": "p_tuning", "num_virtual_tokens": "four"}, r"'peft\.num_virtual_tokens' must be"),
]


def test_bad_configs_are_one_config_error_and_change_nothing(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    num_weights = len(model.weights)
    for config, message in BAD_CONFIGS:
        with pytest.raises(ConfigError, match=message):
            model.add_adapter("x", config)
        assert_plain_model(model, num_weights)


def test_yaml_peft_section_and_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("run_dir: run\nmodel:\n  checkpoint: somewhere\ndata:\n  train: train.jsonl\n"
                    "peft:\n  method: prefix_tuning\n  num_virtual_tokens: 4\n")
    config = load_config(path, overrides=["peft.prefix_projection=true"])
    assert config.peft == PrefixTuningConfig(num_virtual_tokens=4, prefix_projection=True)


def test_bad_adapter_files_name_the_tensor(tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("x", PrefixTuningConfig(num_virtual_tokens=3))
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    target = tiny_model(tiny_checkpoint)
    num_weights = len(target.weights)
    bad = [({**tensors, "prompt_embeddings": tensors["prompt_embeddings"][:, :10]}, r"'prompt_embeddings' has shape"),
           ({k: v for k, v in tensors.items() if k != "prompt_embeddings"}, r"missing \(prompt_embeddings"),
           ({**tensors, "base_model.model.classifier.weight": tensors["base_model.classifier.weight"]},
            r"do not belong to this model \(base_model\.model\.classifier\.weight")]
    for state, message in bad:
        save_file(state, tmp_path / "adapter_model.safetensors")
        with pytest.raises(CheckpointError, match=message):
            target.load_adapter(tmp_path)
        assert_plain_model(target, num_weights)


# --- Hugging Face PEFT interop ----------------------------------------------------------------------------

IDS = np.array([[2, 5, 7, 9, 3, 0], [2, 11, 13, 3, 0, 0], [2, 40, 3, 0, 0, 0]], dtype=np.int32)
MASK = (IDS != 0).astype(np.int32)
TYPES = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.int32)
# The same adapter for peft (`method` picks its config class) and for tfft.
PEFT_METHODS = {
    "prefix": {"method": "prefix_tuning", "num_virtual_tokens": 3},
    "prefix_projection": {"method": "prefix_tuning", "num_virtual_tokens": 3, "prefix_projection": True,
                          "encoder_hidden_size": 8},
    "prompt": {"method": "prompt_tuning", "num_virtual_tokens": 3},
    "p_tuning": {"method": "p_tuning", "num_virtual_tokens": 3, "encoder_hidden_size": 8},
    "p_tuning_lstm": {"method": "p_tuning", "num_virtual_tokens": 3, "encoder_hidden_size": 8,
                      "encoder_reparameterization_type": "LSTM"},
}
TASKS = {"seq": ("SequenceClassifier", "ForSequenceClassification", "SEQ_CLS"),
         "token": ("TokenClassifier", "ForTokenClassification", "TOKEN_CLS")}


def _peft_config(values, task_type):
    import peft

    values = dict(values)
    classes = {"prefix_tuning": peft.PrefixTuningConfig, "prompt_tuning": peft.PromptTuningConfig,
               "p_tuning": peft.PromptEncoderConfig}
    return classes[values.pop("method")](task_type=task_type, **values)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Tiny random-init transformers models (no dropout), saved: BERT per task, a RoBERTa classifier."""
    import torch
    import transformers

    dirs = {}
    for arch, config_class, vocab in (("Bert", transformers.BertConfig, 50),
                                      ("Roberta", transformers.RobertaConfig, 60)):
        config = config_class(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, max_position_embeddings=40)
        for task, (_, suffix, _) in TASKS.items():
            if arch == "Roberta" and task == "token":
                continue
            torch.manual_seed(0)
            model = getattr(transformers, arch + suffix)(config)
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.05 * torch.randn_like(parameter))
            dirs[arch, task] = tmp_path_factory.mktemp(f"{arch}_{task}")
            model.save_pretrained(dirs[arch, task])
    return dirs


def _hf_base(hf_dirs, arch, task):
    import transformers

    model_class = getattr(transformers, arch + TASKS[task][1])
    return model_class.from_pretrained(hf_dirs[arch, task], attn_implementation="eager")


def _inputs(arch):
    if arch == "Roberta":  # <s> ... </s>, padded with 1
        ids = np.where(MASK == 1, IDS, 1)
        return {"input_ids": ids, "attention_mask": MASK}
    return {"input_ids": IDS, "attention_mask": MASK, "token_type_ids": TYPES}


def _torch_logits(peft_model, arch="Bert"):
    """peft's logits; for per-token heads with soft prompts, the real tokens' (peft's come after the prompts)."""
    import torch

    inputs = {k: torch.tensor(v, dtype=torch.long) for k, v in _inputs(arch).items()}
    config = peft_model.active_peft_config
    peft_model.eval()
    with torch.no_grad():
        if config.peft_type != "PREFIX_TUNING":
            logits = peft_model(**inputs).logits
            return (logits[:, config.num_virtual_tokens:] if logits.ndim == 3 else logits).numpy()
        # peft 0.21's prefix forward looks for `past_key_values` in the transformers forward's signature,
        # which transformers 5 names `cache`, and refuses; this is that forward (its path for models whose
        # head takes no cache), the prefixes given to the backbone as `cache`.
        base = peft_model.base_model
        batch = len(IDS)
        inputs["attention_mask"] = torch.cat([torch.ones(batch, config.num_virtual_tokens, dtype=torch.long),
                                              inputs["attention_mask"]], dim=1)
        out = getattr(base, base.base_model_prefix)(**inputs, cache=peft_model.get_prompt(batch_size=batch))
        pooled = type(base).__name__ == "BertForSequenceClassification"
        features = out.pooler_output if pooled else out.last_hidden_state
        return base.classifier(base.dropout(features) if hasattr(base, "dropout") else features).numpy()


def _tfft_model(hf_dirs, arch, task):
    return getattr(tfft, TASKS[task][0]).from_pretrained(hf_dirs[arch, task], tokenizer=False)


def _tfft_logits(model, arch="Bert"):
    return np.asarray(model(_inputs(arch), training=False))


@pytest.mark.requires("torch", "peft")
@pytest.mark.parametrize("method", list(PEFT_METHODS))
def test_peft_adapter_loads_in_tfft(hf_dirs, tmp_path, method):
    import peft

    peft_model = peft.get_peft_model(_hf_base(hf_dirs, "Bert", "seq"), _peft_config(PEFT_METHODS[method], "SEQ_CLS"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    perturb_torch(peft_model)
    peft_model.save_pretrained(tmp_path)
    expected = _torch_logits(peft_model)
    model = _tfft_model(hf_dirs, "Bert", "seq")
    base = _tfft_logits(model)
    model.load_adapter(tmp_path)
    np.testing.assert_allclose(_tfft_logits(model), expected, atol=1e-4)
    assert np.abs(base - expected).max() > 1e-2
    fresh = _tfft_model(hf_dirs, "Bert", "seq")
    fresh.add_adapter("x", PEFT_METHODS[method])
    counts = fresh.trainable_parameters()
    assert (counts["trainable"], counts["total"]) == (trainable, total)


@pytest.mark.requires("torch", "peft")
@pytest.mark.parametrize("method", list(PEFT_METHODS))
def test_tfft_adapter_loads_in_peft(hf_dirs, tmp_path, method):
    import peft

    model = _tfft_model(hf_dirs, "Bert", "seq")
    model.add_adapter("x", PEFT_METHODS[method])
    perturb(model.trainable_variables, seed=1)
    expected = _tfft_logits(model)
    model.save_adapter(tmp_path)
    peft_model = peft.PeftModel.from_pretrained(_hf_base(hf_dirs, "Bert", "seq"), tmp_path)
    np.testing.assert_allclose(_torch_logits(peft_model), expected, atol=1e-4)


@pytest.mark.requires("torch", "peft")
@pytest.mark.parametrize("arch, task", [("Bert", "token"), ("Roberta", "seq")])
@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_token_classifier_and_roberta_both_ways(hf_dirs, tmp_path, arch, task, method):
    """Per-token logits are the real tokens'; RoBERTa's positions count from its padding offset after
    prefixes and run on through soft prompts, as transformers counts them."""
    import peft

    task_type = TASKS[task][2]
    peft_model = peft.get_peft_model(_hf_base(hf_dirs, arch, task), _peft_config(PEFT_METHODS[method], task_type))
    perturb_torch(peft_model)
    peft_model.save_pretrained(tmp_path / "peft")
    model = _tfft_model(hf_dirs, arch, task)
    model.load_adapter(tmp_path / "peft")
    np.testing.assert_allclose(_tfft_logits(model, arch), _torch_logits(peft_model, arch), atol=1e-4)

    perturb(model.trainable_variables, seed=2)
    expected = _tfft_logits(model, arch)
    model.save_adapter(tmp_path / "tfft")
    reloaded = peft.PeftModel.from_pretrained(_hf_base(hf_dirs, arch, task), tmp_path / "tfft")
    np.testing.assert_allclose(_torch_logits(reloaded, arch), expected, atol=1e-4)


@pytest.mark.requires("torch", "peft")
@pytest.mark.parametrize("method", ["prefix_projection", "p_tuning", "p_tuning_lstm"])
def test_reparameterizations_compute_peft_tables(tiny_checkpoint, method):
    """With peft's encoder's weights, tfft's MLP / LSTM gives peft's table (what its files hold)."""
    import peft
    import torch

    config = _peft_config(PEFT_METHODS[method], "SEQ_CLS")
    config.token_dim, config.num_layers, config.num_attention_heads = H, LAYERS, HEADS
    config.num_transformer_submodules = 1
    torch_encoder = (peft.PrefixEncoder if "prefix" in method else peft.PromptEncoder)(config)
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("x", PEFT_METHODS[method])
    module = model._adapters.modules_of("x")["prompt_encoder"]
    parameters = list(torch_encoder.named_parameters())
    assert len(parameters) == len(module.weights)
    for variable, (name, parameter) in zip(module.weights, parameters):
        value = parameter.detach().numpy()
        variable.assign(value.T if value.ndim == 2 and name != "embedding.weight" else value)
    with torch.no_grad():
        expected = torch_encoder(torch.arange(config.num_virtual_tokens)[None])[0].numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(module.table()), expected, atol=1e-5)
