"""ONNX export: every task model's file gives the in-memory model's outputs in onnxruntime, its
int8 file stays close, conversion failures name the ops and leave nothing behind, and a process
without TensorFlow serves the directory with host tokenization equal to tfft's."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfft.errors import TfftError
from tfft.tasks import QuestionAnswerer, SequenceClassifier, TokenClassifier

onnx_deps = pytest.mark.requires("tf2onnx", "onnxruntime")

TEXTS = ["Barack Obama visited São Paulo, then Zürich!", "ok", "",
         "naïve café in 北京 🎬 with Ms. Dupont-Aignan, " + "and a long tail of words " * 12]
PAIRS = ["Who visited?", "what", "nothing at all", "Where was the café? " * 3]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
MAX_LENGTH = 32  # the long text and pair are truncated: the runner must truncate as tfft does


def sharpen(model, seed, largest=4.0):
    """A head whose largest output on TEXTS is `largest`: a random head's are ~0.01, which would
    hide any difference (the bias starts at zero, so the outputs scale with the kernel)."""
    rng = np.random.default_rng(seed)
    kernels = [getattr(model, name).kernel for name in model.peft_head_modules]
    for kernel in kernels:
        kernel.assign(rng.normal(0, 1.0, kernel.shape).astype("float32"))
    out = model(model.tokenizer(TEXTS, max_length=MAX_LENGTH), training=False)
    now = max(np.abs(np.asarray(v)).max() for v in (out.values() if isinstance(out, dict) else [out]))
    for kernel in kernels:
        kernel.assign(np.asarray(kernel) * (largest / now))


def build(name, checkpoint):
    if name in ("single", "lora", "prefix_tuning"):
        model = SequenceClassifier.from_pretrained(checkpoint, labels=["negative", "positive"])
    elif name == "pair":
        model = SequenceClassifier.from_pretrained(checkpoint, labels=["no", "maybe", "yes"], text_pair=True)
    elif name == "multi_label":
        model = SequenceClassifier.from_pretrained(checkpoint, labels=["a", "b", "c"],
                                                   problem_type="multi_label_classification")
    elif name == "regression":
        model = SequenceClassifier.from_pretrained(checkpoint, problem_type="regression")
    elif name == "token":
        model = TokenClassifier.from_pretrained(checkpoint, labels=TAGS)
    else:
        model = QuestionAnswerer.from_pretrained(checkpoint, version_2=True)
    sharpen(model, seed=len(name))
    if name in ("lora", "prefix_tuning"):
        from tests.peft.helpers import perturb

        config = {"method": "lora"} if name == "lora" else {"method": "prefix_tuning", "num_virtual_tokens": 4}
        model.add_adapter("default", config)
        heads = tuple(model.peft_head_modules)  # the sharpened head's trainable copy stays as it is
        perturb([v for v in model.trainable_variables if not v.path.startswith(heads)], seed=1)  # LoRA's B starts at 0
        model.fold_adapters()
    return model


PAIRED = {"pair", "qa"}
NAMES = ["single", "pair", "multi_label", "regression", "token", "qa", "lora", "prefix_tuning"]
LEFT_OUT = {"single": ["labels"], "token": ["tags"], "qa": []}


@pytest.fixture(scope="module")
def exports(tiny_checkpoint, tmp_path_factory):
    """{name: (model, OnnxExport)}, each converted once, when a test first asks for it; int8 for
    two, the optimizer for one."""
    from tfft.export.onnx import export_onnx

    root = tmp_path_factory.mktemp("onnx")

    class Exports(dict):
        def __missing__(self, name):
            model = build(name, tiny_checkpoint)
            self[name] = model, export_onnx(model, root / name, max_length=MAX_LENGTH, task="tiny",
                                            quantize=name in ("single", "qa"), optimize=name == "single")
            return self[name]

    return Exports()


def expected_outputs(model, batch):
    """The in-memory model's own outputs (its call, not the exported signature), by ONNX name."""
    out = model(batch, training=False)
    out = dict(out) if isinstance(out, dict) else {"logits": out}
    if hasattr(model, "probabilities"):
        out["probabilities"] = model.probabilities(out["logits"])
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def inputs_for(name):
    return (TEXTS, PAIRS) if name in PAIRED else (TEXTS, None)


@onnx_deps
@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_the_in_memory_model(exports, name):
    from tfft.export.onnx import OnnxModel

    model, result = exports[name]
    assert max(result.max_abs_diff.values()) <= 1e-4
    texts, pairs = inputs_for(name)
    served = OnnxModel(result.directory).predict_texts(texts, pairs)
    expected = expected_outputs(model, model.tokenizer(texts, pairs, max_length=MAX_LENGTH))
    assert set(served) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(served[key], value, atol=1e-4, err_msg=key)
    assert np.abs(expected[next(iter(expected))]).max() > 0.5  # logits large enough to show a difference


@onnx_deps
def test_files_and_metadata(exports):
    _, result = exports["single"]
    files = sorted(p.name for p in result.directory.iterdir())
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "tfft_metadata.json"} <= set(files)
    assert not [p for p in result.directory.parent.iterdir() if p.name.startswith(".")]  # no staging left
    record = json.loads((result.directory / "tfft_metadata.json").read_text())
    assert record == json.loads(json.dumps(result.metadata))
    assert record["task"] == "tiny" and record["labels"] == ["negative", "positive"] and record["max_length"] == 32
    onnx = record["onnx"]
    assert onnx["opset"] == 17 and onnx["model_file"] == "model.onnx" and onnx["int8_file"] == "model.int8.onnx"
    assert onnx["inputs"] == {n: {"dtype": "int32", "shape": [-1, -1]}
                              for n in ("input_ids", "attention_mask", "token_type_ids")}
    assert onnx["outputs"] == {n: {"dtype": "float32", "shape": [-1, 2]} for n in ("logits", "probabilities")}
    assert onnx["file_sizes"] == {n: (result.directory / n).stat().st_size for n in ("model.onnx", "model.int8.onnx")}
    assert onnx["max_abs_diff"] == result.max_abs_diff and onnx["text_inputs"] == ["text"]
    for name, left_out in LEFT_OUT.items():  # string outputs (label names, tags) have no ONNX ops
        assert exports[name][1].metadata["onnx"]["string_outputs_left_out"] == left_out
    assert exports["pair"][1].metadata["onnx"]["text_inputs"] == ["text", "text_pair"]
    assert exports["qa"][1].metadata["onnx"]["text_inputs"] == ["question", "context"]
    assert exports["lora"][1].metadata["peft"] is None  # merged and unloaded
    assert exports["prefix_tuning"][1].metadata["peft"] == {"default": "prefix_tuning"}  # in the graph


@onnx_deps
def test_optimizer_is_kept_only_when_exact(exports):
    optimizer = exports["single"][1].optimizer
    assert optimizer["requested"]
    if optimizer["applied"]:
        assert max(optimizer["max_abs_diff"].values()) <= 1e-4
    else:
        assert optimizer["reason"]  # e.g. it fuses nothing in tf2onnx's graph of a Keras 3 BERT


@onnx_deps
@pytest.mark.parametrize("name", ["single", "qa"])
def test_int8_is_smaller_and_close(exports, name):
    from tfft.export.onnx import OnnxModel
    from tfft.export.quantize import cpu_has_vnni

    model, result = exports[name]
    assert result.sizes["model.int8.onnx"] < 0.5 * result.sizes["model.onnx"]
    settings = result.metadata["onnx"]["int8"]
    assert settings["per_channel"] and settings["reduce_range"] == (not cpu_has_vnni())
    texts, pairs = inputs_for(name)
    fp32 = OnnxModel(result.directory).predict_texts(texts, pairs)
    int8 = OnnxModel(result.directory, int8=True).predict_texts(texts, pairs)
    for key, value in fp32.items():
        # int8 noise is a fraction of the outputs' scale (up to 5 % on tiny random encoders), not
        # 1e-4 (so a winner ahead by more than 20 % of the scale stays the winner); and it is
        # really the quantized graph that ran.
        assert 0 < np.abs(int8[key] - value).max() <= 0.1 * np.abs(value).max(), key


@onnx_deps
def test_conversion_failure_names_the_ops_and_writes_nothing(tiny_checkpoint, tmp_path):
    import tensorflow as tf

    from tfft.export.onnx import export_onnx

    class StringCounting(SequenceClassifier):  # a numeric output computed with string ops
        def serving_signatures(self, max_length):
            endpoints, resources = super().serving_signatures(max_length)
            serve_ids, signature = endpoints["serve_ids"]

            def counting(input_ids, attention_mask, token_type_ids):
                joined = tf.strings.reduce_join(tf.strings.as_string(input_ids), axis=-1)
                return {**serve_ids(input_ids, attention_mask, token_type_ids),
                        "digits": tf.strings.length(joined)}

            endpoints["serve_ids"] = counting, signature
            return endpoints, resources

    model = StringCounting.from_pretrained(tiny_checkpoint, labels=["a", "b"])
    with pytest.raises(TfftError, match=r"ReduceJoin.*StringLength.*not standard ONNX.*Unsupported ops"):
        export_onnx(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(TfftError, match="already exists"):
        export_onnx(model, tmp_path / "taken")
    with pytest.raises(TfftError, match="opset 19 is not supported"):
        export_onnx(model, tmp_path / "new", opset=19)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@onnx_deps
def test_unconvertible_ops_of_a_graph():
    from onnx import TensorProto, helper

    from tfft.export.onnx import unconvertible_ops

    nodes = [helper.make_node("Add", ["x", "x"], ["a"]),
             helper.make_node("StatefulPartitionedCall", ["a"], ["b"]),
             helper.make_node("StringJoin", ["b"], ["c"]),  # a TF op tf2onnx left as it was
             helper.make_node("FusedMatMul", ["c", "c"], ["d"], domain="com.microsoft")]
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, [1])], [value("d", TensorProto.FLOAT, [1])])
    assert unconvertible_ops(helper.make_model(graph)) == ["FusedMatMul (domain com.microsoft)",
                                                           "StatefulPartitionedCall", "StringJoin"]
    assert unconvertible_ops(helper.make_model(helper.make_graph(nodes[:1], "g", graph.input, []))) == []


@onnx_deps
def test_host_tokenization_equals_tfft(exports):
    from tfft.export.onnx import OnnxModel

    model, result = exports["pair"]
    runner = OnnxModel(result.directory, threads=1)
    assert runner.session.get_session_options().intra_op_num_threads == 1
    for texts, pairs in ((TEXTS, None), (TEXTS, PAIRS), (TEXTS[:1], None), (["a " * 40], ["b " * 5])):
        expected = model.tokenizer(texts, pairs, max_length=MAX_LENGTH)
        got = runner.tokenize(texts, pairs)
        assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}
        assert all(v.dtype == np.int32 for v in got.values())


RUN_WITHOUT_TF = """
import json, sys
from tfft.export import OnnxModel
directory, texts, pairs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
out = {}
for int8 in (False, True):
    served = OnnxModel(directory, int8=int8, threads=1).predict_texts(texts, pairs)
    out[str(int8)] = {k: v.tolist() for k, v in served.items()}
print(json.dumps(out))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf2onnx", "transformers"})))
"""


@onnx_deps
def test_fresh_process_without_tensorflow(exports):
    model, result = exports["qa"]
    run = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TF, str(result.directory), json.dumps(TEXTS),
                          json.dumps(PAIRS)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    served, heavy = (json.loads(line) for line in run.stdout.strip().splitlines()[-2:])
    assert heavy == []
    expected = expected_outputs(model, model.tokenizer(TEXTS, PAIRS, max_length=MAX_LENGTH))
    for key, value in expected.items():
        np.testing.assert_allclose(served["False"][key], value, atol=1e-4)
        np.testing.assert_allclose(served["True"][key], value, atol=0.1 * np.abs(value).max())


def test_keras_int8_quantization_exports_as_saved_model(tiny_checkpoint, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfft.export import export_saved_model
    from tfft.export.quantize import quantize_model_int8

    model = build("single", tiny_checkpoint)
    batch = model.tokenizer(TEXTS)
    before = np.asarray(model(batch, training=False))
    quantize_model_int8(model)
    dense = [layer for layer in model._flatten_layers() if type(layer).__name__ in ("Dense", "Embedding")]
    assert dense and all(layer.quantization_mode == "int8" for layer in dense)
    after = np.asarray(model(batch, training=False))
    assert 0 < np.abs(after - before).max() <= 0.1 * np.abs(before).max()
    loaded = tf.saved_model.load(str(export_saved_model(model, tmp_path / "int8")))
    served = loaded.signatures["serve_ids"](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(served["logits"], after, atol=1e-5)


def test_without_the_onnx_extra_the_error_says_what_to_install(tiny_checkpoint, tmp_path):
    from tfft.export.onnx import export_onnx

    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["a", "b"])
    with pytest.raises(TfftError, match=r"needs (onnxruntime|tf2onnx): pip install -e '\.\[onnx\]'"):
        export_onnx(model, tmp_path / "out")  # this process runs as if the optional modules were absent
    assert list(tmp_path.iterdir()) == []

