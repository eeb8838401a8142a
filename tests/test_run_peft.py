"""A run with a `peft:` section: the run directory keeps the adapter and a reference to the
base, evaluate/predict/export load base + adapter, the export is the merged model, and a bad
`peft:` section is one clear error before anything is written."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tests.export.test_saved_model import LOAD_AND_RUN
from tfft.config import load_config
from tfft.errors import ConfigError, TfftError

DATA = FIXTURES / "data"
TEXTS = ["a fine film", "dull and long"]


def write_config(tmp_path, checkpoint, peft="  method: lora\n  r: 4\n"):
    path = tmp_path / "run.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\n"
        f"model:\n  checkpoint: {checkpoint}\n"
        f"data:\n  train: {DATA / 'reviews.jsonl'}\n  dev: {DATA / 'reviews.jsonl'}\n  test: {DATA / 'reviews.jsonl'}\n"
        f"training:\n  epochs: 1\n  batch_size: 8\n  learning_rate: 1.0e-3\n"
        f"peft:\n{peft}"
    )
    return path


@pytest.fixture(scope="module")
def peft_run(tmp_path_factory, tiny_checkpoint):
    tmp_path = tmp_path_factory.mktemp("peft_run")
    checkpoint = tmp_path / "base"
    shutil.copytree(tiny_checkpoint, checkpoint)
    result = subprocess.run([sys.executable, "-m", "tfft.cli", "train", str(write_config(tmp_path, checkpoint)),
                             "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "run", checkpoint, result


def test_the_run_keeps_the_adapter_and_a_reference_to_the_base(peft_run):
    run, checkpoint, result = peft_run
    names = {p.name for p in run.iterdir()}
    assert {"adapter", "base_model.json", "config.yaml", "metrics.json", "export", "best"} <= names
    assert "model.keras" not in names  # no copy of the base
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["task_type"] == "SEQ_CLS" and adapter["r"] == 4
    assert adapter["target_modules"] == ["attention.self.query", "attention.self.value"]
    assert adapter["modules_to_save"] == ["classifier"]
    assert adapter["base_model_name_or_path"] == str(checkpoint)
    reference = json.loads((run / "base_model.json").read_text())
    assert reference["checkpoint"] == str(checkpoint) and len(reference["weights_sha256"]) == 64
    weights = (run / "adapter" / "adapter_model.safetensors").stat().st_size
    assert weights < (checkpoint / "model.safetensors").stat().st_size / 10
    config = load_config(run / "config.yaml")
    assert config.peft.method == "lora" and config.peft.target_modules == adapter["target_modules"]


def test_evaluate_predict_and_export_use_base_plus_adapter(peft_run, tmp_path):
    from tfft.run import evaluate, export, load_run_model, predict

    run, _, _ = peft_run
    metrics = json.loads((run / "metrics.json").read_text())
    again = evaluate(run, DATA / "reviews.jsonl")
    assert again["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    model = load_run_model(run)
    assert model.active_adapter == "default" and model._adapters.merged
    predictions = [result for _, result in predict(run, TEXTS)]
    expected = model.predict_texts(TEXTS)
    assert [p["label"] for p in predictions] == [e["label"] for e in expected]
    with model.disable_adapters():  # the adapter changed the model
        base = model.predict_texts(TEXTS)
    assert base[0]["probabilities"] != expected[0]["probabilities"]

    exported = export(run, tmp_path / "export")
    served = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(exported), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    outputs = json.loads(served.stdout.strip().splitlines()[-2])
    np.testing.assert_allclose(outputs["probabilities"], [list(e["probabilities"].values()) for e in expected],
                               atol=1e-5)


def test_a_changed_base_checkpoint_is_refused(peft_run, tmp_path):
    from tfft.run import load_run_model

    run, checkpoint, _ = peft_run
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    other = tmp_path / "other_base"
    shutil.copytree(checkpoint, other)
    with open(other / "model.safetensors", "r+b") as f:  # one byte of the weights changes
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    reference = json.loads((moved / "base_model.json").read_text())
    reference["checkpoint"] = str(other)
    (moved / "base_model.json").write_text(json.dumps(reference))
    with pytest.raises(TfftError, match="not the one the adapter was trained on"):
        load_run_model(moved)


@pytest.mark.parametrize("peft, message", [
    ("  method: lora\n  r: 0\n", "'peft.r' must be a positive integer"),
    ("  method: lora\n  target_modules: [qurey]\n", "'peft.target_modules': 'qurey' matches no module"),
    ("  method: lora\n  target_modules: [LayerNorm]\n", "LoRA adapts Dense layers"),
    ("  method: lora\n  rank: 8\n", "unknown key 'peft.rank'"),
    ("  method: lorra\n", "'peft.method' must be one of"),
])
def test_a_bad_peft_section_is_one_error_before_the_run_starts(tmp_path, tiny_checkpoint, peft, message):
    from tfft.run import train

    with pytest.raises(ConfigError) as error:
        train(load_config(write_config(tmp_path, tiny_checkpoint, peft)), verbose=0)
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()


def test_the_module_list_in_the_error_names_the_encoder_modules(tmp_path, tiny_checkpoint):
    from tfft.run import train

    with pytest.raises(ConfigError) as error:
        train(load_config(write_config(tmp_path, tiny_checkpoint, "  method: ia3\n  target_modules: [ffn]\n")),
              verbose=0)
    for name in ("attention.self.query", "attention.self.key", "attention.output.dense", "intermediate.dense",
                 "output.dense", "classifier"):
        assert name in str(error.value)


def test_head_fields_set_after_training_come_back_with_the_base(tiny_checkpoint):
    from tfft.run import _with_head_config
    from tfft.tasks import QuestionAnswerer

    model = QuestionAnswerer.from_pretrained(tiny_checkpoint, version_2=True)
    trained = {**model.head_config(), "null_threshold": 1.25}  # what after_fit tuned on dev
    rebuilt = _with_head_config(model, trained)
    assert rebuilt.null_threshold == 1.25 and rebuilt.tokenizer is model.tokenizer
    batch = model.tokenizer(["who?"], ["nobody at all"])
    for key, value in model(batch).items():
        np.testing.assert_array_equal(np.asarray(rebuilt(batch)[key]), np.asarray(value))
    assert _with_head_config(model, model.head_config()) is model
