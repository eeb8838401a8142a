"""Multi-worker training with real worker processes on 127.0.0.1, as TensorFlow's own tests run it.

Each case trains a tiny BERT with `launch_local_workers` (every worker runs worker_script.py,
which calls `tfft.run.train`) and compares it with the same config trained by one process on
the same global batch. These tests start several TensorFlow processes each, so they are marked
`multi_worker` (`pytest -m "not multi_worker"` leaves them out).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tfft.distribute import launch_local_workers

pytestmark = pytest.mark.multi_worker

SCRIPT = Path(__file__).with_name("worker_script.py")
WNUT_DEV = Path(__file__).resolve().parents[2] / "data" / "ner-wnut16" / "dev.conll"
SQUAD_V2 = Path(__file__).resolve().parents[1] / "tasks" / "question_answering" / "fixtures" / "squad_v2.json"
GLOBAL_BATCH = 6  # splits evenly over 1, 2 and 3 workers
RUN_FILES = {"config.yaml", "labels.json", "best", "tensorboard", "metrics.json", "model.keras", "export"}


def classifier_config(tmp_path, checkpoint, name="run"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"run_dir: {tmp_path / name}\nmodel:\n  checkpoint: {checkpoint}\n  dropout: 0.0\n"
        f"data:\n  train: {FIXTURES / 'data' / 'reviews.jsonl'}\n  dev: {FIXTURES / 'data' / 'reviews.jsonl'}\n"
        "  bucket_by_length: false\n"
        f"training:\n  epochs: 2\n  batch_size: {GLOBAL_BATCH}\n  learning_rate: 1.0e-3\n  log_every_steps: 2\n"
        "  checkpoint_every_steps: 2\n")
    return path


def token_config(tmp_path, checkpoint, name="run"):
    blocks = WNUT_DEV.read_text(encoding="utf-8").split("\n\n")
    train = tmp_path / "ner.conll"
    train.write_text("\n\n".join(blocks[:24]) + "\n", encoding="utf-8")
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"run_dir: {tmp_path / name}\ntask: token_classification\nmodel:\n  checkpoint: {checkpoint}\n  dropout: 0.0\n"
        f"data:\n  train: {train}\n  dev: {train}\n  max_length: 128\n  bucket_by_length: false\n"
        f"training:\n  epochs: 2\n  batch_size: {GLOBAL_BATCH}\n  learning_rate: 1.0e-3\n  log_every_steps: 2\n"
        "  checkpoint_every_steps: 2\n")
    return path


def qa_config(tmp_path, checkpoint, name="run"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"run_dir: {tmp_path / name}\ntask: question_answering\nmodel:\n  checkpoint: {checkpoint}\n  dropout: 0.0\n"
        f"  version_2: true\ndata:\n  train: {SQUAD_V2}\n  dev: {SQUAD_V2}\n  max_length: 64\n  doc_stride: 16\n"
        f"  bucket_by_length: false\ntraining:\n  epochs: 2\n  batch_size: {GLOBAL_BATCH}\n  learning_rate: 1.0e-3\n"
        "  log_every_steps: 2\n  checkpoint_every_steps: 2\n")
    return path


def peft_config(method, **options):
    def make(tmp_path, checkpoint, name="run"):
        path = classifier_config(tmp_path, checkpoint, name)
        fields = "".join(f"  {key}: {value}\n" for key, value in options.items())
        path.write_text(path.read_text() + f"peft:\n  method: {method}\n{fields}")
        return path

    return make


STEPS = {"question_answerer": 84}  # squad_v2.json's 252 windows / 6, two epochs; the others: 24 rows / 6
CONFIGS = {
    "classifier": classifier_config, "token_classifier": token_config, "question_answerer": qa_config,
    "lora_classifier": peft_config("lora", r=4, lora_alpha=8),
    # AdaLoRA masks at steps 2 and 4 (from 0) and freezes its pattern at 6; its importance comes
    # from gradients summed across replicas, so every worker must mask the same entries.
    "adalora_classifier": peft_config("adalora", init_r=4, target_r=2, lora_alpha=8, total_step=8, tinit=1,
                                      tfinal=2, deltaT=2),
}
# The other PEFT methods take the same path; TFFT_TEST_EVERY_PEFT_METHOD=1 runs each on 2
# workers too (8 more cases, about 6 minutes).
OTHER_PEFT = {"ia3": {}, "bitfit": {}, "houlsby": {}, "pfeiffer": {}, "parallel": {},
              "prefix_tuning": {"num_virtual_tokens": 4}, "prompt_tuning": {"num_virtual_tokens": 4},
              "p_tuning": {"num_virtual_tokens": 4}}
CONFIGS.update({f"{method}_classifier": peft_config(method, **options) for method, options in OTHER_PEFT.items()})

# Three workers once, with the NER tagger: its loss needs the global count of labelled tokens.
CASES = [("classifier", 2), ("token_classifier", 2), ("token_classifier", 3), ("question_answerer", 2),
         ("lora_classifier", 2), ("adalora_classifier", 2)]
if os.environ.get("TFFT_TEST_EVERY_PEFT_METHOD") == "1":
    CASES += [(f"{method}_classifier", 2) for method in OTHER_PEFT]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random BERT without dropout: each replica draws its own dropout masks, so with
    dropout no two strategies can agree step by step (TensorFlow's own tests train without)."""
    from tfft.encoders import BertEncoder, EncoderConfig
    from tfft.tokenizers import Tokenizer

    path = tmp_path_factory.mktemp("tiny_bert_no_dropout")
    tokenizer = Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")
    config = EncoderConfig(model_type="bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                           num_heads=4, intermediate_size=64, max_position_embeddings=128, hidden_dropout=0.0,
                           attention_dropout=0.0)
    BertEncoder(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def worker_command(config, records, *args):
    return [sys.executable, str(SCRIPT), str(config), str(records), *args]


def read_records(records, workers):
    runs = []
    for i in range(workers):
        record = json.loads((records / f"worker-{i}.json").read_text())
        with np.load(records / f"worker-{i}.npz") as weights:
            record["weights"] = dict(weights)
        runs.append(record)
    return runs


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, checkpoint):
    """`one_worker(name)`: config `name` trained by one process without a strategy, the
    reference (trained on first use, once per module)."""
    runs = {}

    def reference(name):
        if name not in runs:
            tmp = tmp_path_factory.mktemp(f"one_{name}")
            result = subprocess.run(worker_command(CONFIGS[name](tmp, checkpoint), tmp / "records"),
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            runs[name] = read_records(tmp / "records", 1)[0]
            runs[name]["files"] = {p.name for p in (tmp / "run").iterdir()}
        return runs[name]

    return reference


@pytest.mark.parametrize("name, workers", CASES)
def test_workers_train_as_one_worker_on_the_global_batch(tmp_path, checkpoint, one_worker, name, workers):
    config = CONFIGS[name](tmp_path, checkpoint)
    # --late (once): the chief must not remove the backup while another worker still writes its copy.
    late = ["--late", "8"] if (name, workers) == CASES[0] else []
    code = launch_local_workers(worker_command(config, tmp_path / "records", *late,
                                               "training.distribute=multi_worker_mirrored"),
                                workers, log_dir=tmp_path / "logs")
    assert code == 0, "\n".join(p.read_text()[-2000:] for p in (tmp_path / "logs").glob("*.log"))
    runs = read_records(tmp_path / "records", workers)
    reference = one_worker(name)
    for run in runs:
        assert run["step"] == reference["step"] == STEPS.get(name, 8)
        np.testing.assert_allclose(run["losses"], reference["losses"], atol=2e-3)
        for key, value in run["weights"].items():  # every worker ends with the same weights
            np.testing.assert_array_equal(value, runs[0]["weights"][key], err_msg=key)
    difference = max(float(np.max(np.abs(v - reference["weights"][k]))) for k, v in runs[0]["weights"].items())
    assert difference < 1e-2  # Adam's normalized steps turn roundoff in tiny gradients into up to lr per step
    if name == "adalora_classifier":  # the allocation did mask, the same entries everywhere
        masks = [k for k in reference["weights"] if "rank_mask" in k]
        assert masks and 0 < sum(float(np.sum(reference["weights"][k] == 0)) for k in masks)
    if name == "token_classifier":  # (the tiny classifier's loss hardly moves from log 2 in 8 steps)
        assert reference["losses"][-1] < reference["losses"][0] - 0.1  # it trains
    # One set of run files, the chief's: what the one-worker run writes, no worker's leftovers.
    run_dir = tmp_path / "run"
    assert {p.name for p in run_dir.iterdir()} == reference["files"]
    peft = name not in ("classifier", "token_classifier", "question_answerer")
    no_files = ({"model.keras"} if peft else set()) | ({"labels.json"} if name == "question_answerer" else set())
    assert reference["files"] >= RUN_FILES - no_files  # (an adapter run saves the adapter; QA has no labels)
    assert not list(run_dir.rglob("workertemp_*"))
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == STEPS.get(name, 8)


def _worker_pid(config, index):
    """The pid of worker `index` of the run of `config` (read from /proc: its TF_CONFIG)."""
    for proc in Path("/proc").iterdir():
        try:
            if str(config) not in (proc / "cmdline").read_text():
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        for entry in environ:
            if entry.startswith(b"TF_CONFIG=") and json.loads(entry[10:])["task"]["index"] == index:
                return int(proc.name)
    return None


def test_a_killed_worker_stops_the_job_and_the_same_launch_resumes(tmp_path, checkpoint, capfd):
    import threading

    config = classifier_config(tmp_path, checkpoint)  # 4 steps an epoch, a backup every 2
    args = ["training.distribute=multi_worker_mirrored", "training.epochs=3"]
    codes = []
    launch = threading.Thread(target=lambda: codes.append(launch_local_workers(
        worker_command(config, tmp_path / "records", "--pause", "0.4", *args), 2, log_dir=tmp_path / "logs")))
    launch.start()
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and launch.is_alive():
        if metadata.is_file() and json.loads(metadata.read_text()).get("step", 0) >= 6:
            break  # epoch 2, batch 2 of 4: mid-epoch
        time.sleep(0.1)
    pid = _worker_pid(config, 1)
    assert pid is not None and launch.is_alive(), "the run ended before the kill"
    os.kill(pid, signal.SIGKILL)
    launch.join(180)
    assert not launch.is_alive()
    assert codes[0] == 143  # the chief's: stopped, run again to resume (TFJob's ExitCode policy retries it)
    err = capfd.readouterr().err
    assert "training stopped because another worker stopped or became unreachable" in err
    assert "start every worker again with the same command to resume" in err
    assert not (tmp_path / "run" / "metrics.json").exists()
    saved = json.loads(metadata.read_text())
    assert 6 <= saved["step"] < 12

    code = launch_local_workers(worker_command(config, tmp_path / "records", *args), 2, log_dir=tmp_path / "logs2")
    assert code == 0
    err = capfd.readouterr().err
    assert f"step {saved['step']}" in err and "resuming from" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 12  # the uninterrupted run's: 3 epochs of 4 steps
    for i in range(2):
        assert json.loads((tmp_path / "records" / f"worker-{i}.json").read_text())["step"] == 12
    assert not (tmp_path / "run" / "backup").exists()


def test_sigterm_to_the_chief_saves_a_backup_and_the_same_launch_resumes_from_it(tmp_path, checkpoint, capfd):
    """Preemption of the chief's node: it saves a backup at its step and exits 143; the other
    worker stops as after a lost worker; started again, both resume at the chief's step."""
    import threading

    config = classifier_config(tmp_path, checkpoint)
    args = ["training.distribute=multi_worker_mirrored", "training.epochs=3", "training.checkpoint_every_steps=100"]
    codes = []
    launch = threading.Thread(target=lambda: codes.append(launch_local_workers(
        worker_command(config, tmp_path / "records", "--pause", "0.4", *args), 2, log_dir=tmp_path / "logs")))
    launch.start()
    progress = tmp_path / "records" / "progress-0"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and launch.is_alive():
        if progress.is_file() and int(progress.read_text() or 0) >= 5:
            break
        time.sleep(0.1)
    pid = _worker_pid(config, 0)
    assert pid is not None and launch.is_alive(), "the run ended before the signal"
    os.kill(pid, signal.SIGTERM)
    launch.join(180)
    assert not launch.is_alive() and codes[0] == 143
    saved = json.loads((tmp_path / "run" / "backup" / "training_metadata.json").read_text())
    assert 5 <= saved["step"] < 12  # no periodic backup: the one SIGTERM made
    capfd.readouterr()

    code = launch_local_workers(worker_command(config, tmp_path / "records", *args), 2, log_dir=tmp_path / "logs2")
    assert code == 0
    assert f"step {saved['step']}" in capfd.readouterr().err
    for i in range(2):
        assert json.loads((tmp_path / "records" / f"worker-{i}.json").read_text())["step"] == 12


def test_an_unreachable_worker_fails_after_the_bounded_wait(tmp_path, checkpoint):
    from tfft.distribute import free_ports, tf_config

    config = classifier_config(tmp_path, checkpoint)
    own, absent = (f"127.0.0.1:{port}" for port in free_ports(2))
    env = {**os.environ, "TF_CONFIG": tf_config([own, absent], 0)}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tfft.cli", "train", str(config), "--quiet",
                             "--set", "training.distribute=multi_worker_mirrored",
                             "--set", "training.cluster_timeout=5"],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == -signal.SIGKILL  # (137 in a shell) the watchdog kills a worker TensorFlow keeps waiting
    assert time.monotonic() - start < 120
    assert f"no answer from {absent} (worker 1)" in result.stderr
    assert f"worker 0 ({own}) could not form the cluster of 2 workers within 5 s" in result.stderr
    assert result.stderr.count("tfft: error:") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_local_workers_cli_streams_the_chief_and_writes_one_run(tmp_path, checkpoint):
    config = classifier_config(tmp_path, checkpoint)
    result = subprocess.run([sys.executable, "-m", "tfft.cli", "train", str(config), "--local-workers", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 workers on 127.0.0.1:" in result.stderr
    assert "dev metrics" in result.stdout and "SavedModel for TF Serving" in result.stdout  # the chief's output
    assert result.stdout.count("epoch 2/2 done at step 8") == 1  # the other worker's goes to its log
    assert {p.name for p in (tmp_path / "run").iterdir()} == RUN_FILES
    log_dir = Path(result.stderr.split("worker logs in ")[1].split()[0])
    assert not log_dir.exists()  # removed after a run that succeeded
    assert yaml_distribute(tmp_path / "run" / "config.yaml") == "multi_worker_mirrored"


def yaml_distribute(path):
    import yaml

    return yaml.safe_load(path.read_text())["training"]["distribute"]
