"""Hugging Face PEFT reads tfft's adapter files and tfft reads PEFT's, with the same logits
(torch and peft: these tests run in the optional-modules subprocess)."""

import numpy as np
import pytest

import tfft
from tests.peft.helpers import perturb_torch

pytestmark = pytest.mark.requires("torch", "peft")

IDS = np.array([[2, 5, 7, 9, 3, 0], [2, 11, 13, 3, 0, 0], [2, 40, 3, 0, 0, 0]], dtype=np.int32)
MASK = (IDS != 0).astype(np.int32)
TYPES = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=np.int32)

# The same adapter for peft (`method` picks its config class) and for tfft (`add_adapter` takes the dict).
METHODS = {
    "lora": {"method": "lora", "r": 4, "lora_alpha": 8},
    "lora_rslora": {"method": "lora", "r": 4, "lora_alpha": 8, "use_rslora": True},
    # "dense" includes the pooler, whose tanh comes after the LoRA update.
    "lora_bias_all_dense": {"method": "lora", "r": 4, "lora_alpha": 8, "bias": "all",
                            "target_modules": ["query", "dense"]},
    "lora_only_bias": {"method": "lora", "r": 2, "lora_alpha": 4, "bias": "lora_only",
                       "target_modules": ["key", "intermediate.dense"]},
    "ia3": {"method": "ia3"},
}
TASKS = {  # task -> (transformers class, peft task_type)
    "seq": ("BertForSequenceClassification", "SEQ_CLS"),
    "token": ("BertForTokenClassification", "TOKEN_CLS"),
    "qa": ("BertForQuestionAnswering", "QUESTION_ANS"),
}
TFFT_CLASSES = {"seq": tfft.SequenceClassifier, "token": tfft.TokenClassifier, "qa": tfft.QuestionAnswerer}


def _peft_config(values, task_type):
    import peft

    values = dict(values)
    method = values.pop("method")
    cls = peft.LoraConfig if method == "lora" else peft.IA3Config
    return cls(task_type=task_type, **values)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """A tiny random-init transformers BERT per task (no dropout), saved; its head moved off zero."""
    import torch
    import transformers

    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, max_position_embeddings=32)
    dirs = {}
    for task, (class_name, _) in TASKS.items():
        torch.manual_seed(0)
        config.num_labels = 2 if task == "qa" else 3  # qa_outputs: a start and an end logit
        model = getattr(transformers, class_name)(config)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        dirs[task] = tmp_path_factory.mktemp(f"hf_{task}")
        model.save_pretrained(dirs[task])
    return dirs


def _hf_base(hf_dirs, task):
    import transformers

    return getattr(transformers, TASKS[task][0]).from_pretrained(hf_dirs[task], attn_implementation="eager")


def _torch_logits(model, task):
    import torch

    model.eval()
    # The transformers model inside a PeftModel runs the adapters too; calling it directly keeps
    # token_type_ids, which peft 0.21's PeftModelForQuestionAnswering.forward drops.
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        out = model(input_ids=torch.tensor(IDS, dtype=torch.long), attention_mask=torch.tensor(MASK, dtype=torch.long),
                    token_type_ids=torch.tensor(TYPES, dtype=torch.long))
    if task == "qa":
        return np.stack([out.end_logits.numpy(), out.start_logits.numpy()])
    return out.logits.numpy()


def _tfft_logits(model):
    out = model({"input_ids": IDS, "attention_mask": MASK, "token_type_ids": TYPES}, training=False)
    if isinstance(out, dict):
        return np.stack([np.asarray(out["end_logits"]), np.asarray(out["start_logits"])])
    return np.asarray(out)


def _tfft_model(hf_dirs, task):
    return TFFT_CLASSES[task].from_pretrained(hf_dirs[task], tokenizer=False)


def _perturb_tfft(model):
    rng = np.random.default_rng(1)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + rng.standard_normal(tuple(variable.shape)).astype("float32") * 0.3)


def test_base_models_agree(hf_dirs):
    for task in TASKS:
        expected = _torch_logits(_hf_base(hf_dirs, task), task)
        np.testing.assert_allclose(_tfft_logits(_tfft_model(hf_dirs, task)), expected, atol=1e-5, err_msg=task)


@pytest.mark.parametrize("method", list(METHODS))
def test_peft_adapter_loads_in_tfft(hf_dirs, tmp_path, method):
    import peft

    peft_model = peft.get_peft_model(_hf_base(hf_dirs, "seq"), _peft_config(METHODS[method], "SEQ_CLS"))
    perturb_torch(peft_model)
    peft_model.save_pretrained(tmp_path)
    expected = _torch_logits(peft_model, "seq")
    model = _tfft_model(hf_dirs, "seq")
    base = _tfft_logits(model)
    model.load_adapter(tmp_path)
    np.testing.assert_allclose(_tfft_logits(model), expected, atol=1e-5)
    model.merge_adapter()
    np.testing.assert_allclose(_tfft_logits(model), expected, atol=1e-5)
    with model.disable_adapters():
        np.testing.assert_array_equal(_tfft_logits(model), base)


@pytest.mark.parametrize("method", list(METHODS))
def test_tfft_adapter_loads_in_peft(hf_dirs, tmp_path, method):
    import peft

    model = _tfft_model(hf_dirs, "seq")
    model.add_adapter("x", METHODS[method])
    _perturb_tfft(model)
    expected = _tfft_logits(model)
    model.save_adapter(tmp_path)
    peft_model = peft.PeftModel.from_pretrained(_hf_base(hf_dirs, "seq"), tmp_path)
    np.testing.assert_allclose(_torch_logits(peft_model, "seq"), expected, atol=1e-5)
    # Merged in peft: the same again.
    np.testing.assert_allclose(_torch_logits(peft_model.merge_and_unload(), "seq"), expected, atol=1e-5)


@pytest.mark.parametrize("task", ["token", "qa"])
def test_per_token_heads_both_ways(hf_dirs, tmp_path, task):
    import peft

    task_type = TASKS[task][1]
    peft_model = peft.get_peft_model(_hf_base(hf_dirs, task), peft.LoraConfig(task_type=task_type, r=4, lora_alpha=8))
    perturb_torch(peft_model)
    peft_model.save_pretrained(tmp_path / "peft")
    model = _tfft_model(hf_dirs, task)
    model.load_adapter(tmp_path / "peft")
    np.testing.assert_allclose(_tfft_logits(model), _torch_logits(peft_model, task), atol=1e-5)

    _perturb_tfft(model)
    expected = _tfft_logits(model)
    model.save_adapter(tmp_path / "tfft")
    reloaded = peft.PeftModel.from_pretrained(_hf_base(hf_dirs, task), tmp_path / "tfft")
    np.testing.assert_allclose(_torch_logits(reloaded, task), expected, atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "ia3", "lora_only_bias"])
def test_parameter_counts_match_peft(hf_dirs, method):
    import peft

    peft_model = peft.get_peft_model(_hf_base(hf_dirs, "seq"), _peft_config(METHODS[method], "SEQ_CLS"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    model = _tfft_model(hf_dirs, "seq")
    model.add_adapter("x", METHODS[method])
    counts = model.trainable_parameters()
    assert counts["trainable"] == trainable
    if METHODS[method].get("bias", "none") == "none":
        assert counts["total"] == total
    # else tfft's total also counts its bias-delta variables, which peft has not (peft trains the
    # biases in place): 96 more here.
    requires_grad = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert counts["trainable"] == requires_grad


def test_roberta_head_container_both_ways(tmp_path):
    """RoBERTa's `classifier` holds the pooler dense and out_proj: modules_to_save copies both."""
    import peft
    import torch
    import transformers

    config = transformers.RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, max_position_embeddings=40)
    torch.manual_seed(0)
    transformers.RobertaForSequenceClassification(config).save_pretrained(tmp_path / "base")
    ids = np.array([[0, 5, 7, 9, 2, 1], [0, 11, 13, 2, 1, 1]], dtype=np.int32)
    mask = (ids != 1).astype(np.int32)

    def torch_logits(model):
        model.eval()
        with torch.no_grad():
            return model(input_ids=torch.tensor(ids, dtype=torch.long),
                         attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()

    hf = peft.get_peft_model(transformers.RobertaForSequenceClassification.from_pretrained(tmp_path / "base"),
                             peft.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8))
    perturb_torch(hf)
    hf.save_pretrained(tmp_path / "from_peft")
    model = tfft.SequenceClassifier.from_pretrained(tmp_path / "base", tokenizer=False)
    model.load_adapter(tmp_path / "from_peft")
    np.testing.assert_allclose(np.asarray(model({"input_ids": ids, "attention_mask": mask})), torch_logits(hf),
                               atol=1e-5)
    _perturb_tfft(model)
    model.save_adapter(tmp_path / "from_tfft")
    again = peft.PeftModel.from_pretrained(transformers.RobertaForSequenceClassification.from_pretrained(
        tmp_path / "base"), tmp_path / "from_tfft")
    np.testing.assert_allclose(torch_logits(again), np.asarray(model({"input_ids": ids, "attention_mask": mask})),
                               atol=1e-5)
