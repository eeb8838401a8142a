"""`tfft serve` on a tiny exported classifier, over HTTP: TF Serving's REST API, KServe V2, the
token and the limits. One server (a `tfft serve` subprocess) answers every test of this module."""

import base64
import concurrent.futures
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.requires("kserve")

TEXTS = ["A gripping, funny film.", "Dull, long and pointless!", "naïve café 电影 🎬"]
TOKEN = "test-token-1234"
LIMITS = {"--max-body-bytes": 200_000, "--max-batch-size": 16, "--max-text-chars": 2000}

# `tfft serve` through tfft.cli.main, with the subcommand added where tfft.cli does not have it yet.
SERVE = """
import argparse, sys
import tfft.cli
from tfft.serve.cli import add_parser
parser = tfft.cli.build_parser()
commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
if "serve" not in commands.choices:
    add_parser(commands)
tfft.cli.build_parser = lambda: parser
sys.exit(tfft.cli.main(sys.argv[1:]))
"""


class Server:
    def __init__(self, url, banner):
        import requests

        self.url, self.banner = url, banner
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def get(self, path, **kwargs):
        return self.session.get(self.url + path, timeout=60, **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.url + path, timeout=60, **kwargs)

    def predict(self, body, path="/v1/models/sentiment:predict"):
        response = self.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    from tfft.export import export_saved_model
    from tfft.tasks import SequenceClassifier

    classifier = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])
    return classifier, export_saved_model(classifier, tmp_path_factory.mktemp("serve") / "sentiment")


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    _, version_dir = exported
    stderr_path = tmp_path_factory.mktemp("serve_log") / "stderr.txt"
    options = [str(v) for option in LIMITS.items() for v in option]
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", str(version_dir.parent), "--http-port", "0", "--threads", "2",
             *options], stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "TFFT_SERVE_TOKEN": TOKEN}, cwd=Path(__file__).parents[2])
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        banner = lines.get(timeout=300)
    except queue.Empty:
        banner = ""
    if not banner.startswith("tfft: serving"):
        process.kill()
        pytest.fail(f"tfft serve did not start: {banner!r}\n{stderr_path.read_text()[-4000:]}")
    yield Server(banner.rsplit(" at ", 1)[1].split("/v1/")[0], banner)
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=30) == 0, stderr_path.read_text()[-4000:]  # a clean stop on Ctrl-C
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.fixture(scope="module")
def reference(exported):
    """The SavedModel's own outputs: reference(signature, **inputs) -> {name: numpy array}."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(exported[1]))

    def run(signature="serving_default", **inputs):
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    return run


def assert_rows_match(predictions, expected):
    assert [p["labels"] for p in predictions] == [label.decode() for label in expected["labels"]]
    for name in ("probabilities", "logits"):
        np.testing.assert_allclose([p[name] for p in predictions], expected[name], atol=1e-5)


def test_startup_line_names_the_model(server):
    assert server.banner.startswith("tfft: serving sentiment version 1 ")
    assert "serve_examples, serve_ids, serving_default" in server.banner
    assert server.url.startswith("http://127.0.0.1:")


def test_row_format_matches_the_saved_model(server, reference):
    for texts in (TEXTS[:1], TEXTS):
        assert_rows_match(server.predict({"instances": texts})["predictions"], reference(text=texts))
    named = server.predict({"instances": [{"text": t} for t in TEXTS]}, path="/v1/models/sentiment/versions/1:predict")
    assert_rows_match(named["predictions"], reference(text=TEXTS))


def test_columnar_format_matches_the_saved_model(server, reference):
    expected = reference(text=TEXTS)
    for body in ({"inputs": TEXTS}, {"inputs": {"text": TEXTS}, "signature_name": "serving_default"}):
        outputs = server.predict(body)["outputs"]
        assert sorted(outputs) == ["labels", "logits", "probabilities"]
        assert outputs["labels"] == [label.decode() for label in expected["labels"]]
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)


def test_serve_ids_and_serve_examples(server, reference, exported):
    import tensorflow as tf

    ids = {k: np.asarray(v, np.int32) for k, v in exported[0].tokenizer(TEXTS).items()}
    expected = reference("serve_ids", **ids)
    rows = [{k: v[i].tolist() for k, v in ids.items()} for i in range(len(TEXTS))]
    assert_rows_match(server.predict({"signature_name": "serve_ids", "instances": rows})["predictions"], expected)
    columns = server.predict({"signature_name": "serve_ids", "inputs": {k: v.tolist() for k, v in ids.items()}})
    np.testing.assert_allclose(columns["outputs"]["logits"], expected["logits"], atol=1e-5)

    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in TEXTS]
    body = {"signature_name": "serve_examples", "instances": [{"b64": base64.b64encode(e).decode()} for e in examples]}
    assert_rows_match(server.predict(body)["predictions"], reference(text=TEXTS))


def test_status_and_metadata(server):
    status = server.get("/v1/models/sentiment").json()
    assert status["model_version_status"] == [{"version": "1", "state": "AVAILABLE",
                                               "status": {"error_code": "OK", "error_message": ""}}]
    assert (status["name"], status["ready"]) == ("sentiment", True)  # KServe V1's fields too
    assert server.get("/v1/models/sentiment/versions/1").status_code == 200
    missing = server.get("/v1/models/sentiment/versions/2")
    assert missing.status_code == 404 and "version 2" in missing.json()["error"]
    assert server.get("/v1/models/other").status_code == 404
    assert server.get("/v1/models").json() == {"models": ["sentiment"]}

    metadata = server.get("/v1/models/sentiment/metadata").json()
    assert metadata["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["serve_examples", "serve_ids", "serving_default"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["text"] == {"dtype": "DT_STRING", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}], "unknown_rank": False}}
    assert [d["size"] for d in default["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "2"]
    assert signatures["serve_ids"]["inputs"]["input_ids"]["dtype"] == "DT_INT32"


def test_v2_protocol(server, reference, exported):
    assert server.session.get(server.url + "/v2/health/ready", headers={"Authorization": ""}).json() == \
        {"ready": True}  # open without the token
    metadata = server.get("/v2/models/sentiment").json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert server.get("/v2/models/sentiment/ready").json()["ready"] is True

    response = server.post("/v2/models/sentiment/infer", json={
        "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": TEXTS}]})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    expected = reference(text=TEXTS)
    assert outputs["labels"]["data"] == [label.decode() for label in expected["labels"]]
    assert outputs["probabilities"]["shape"] == [3, 2] and outputs["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 2)), expected["probabilities"],
                               atol=1e-5)

    ids = {k: np.asarray(v, np.int32) for k, v in exported[0].tokenizer(TEXTS).items()}
    response = server.post("/v2/models/sentiment/infer", json={
        "parameters": {"signature_name": "serve_ids"},
        "inputs": [{"name": k, "shape": list(v.shape), "datatype": "INT32", "data": v.ravel().tolist()}
                   for k, v in ids.items()]})
    assert response.status_code == 200, response.text
    logits = next(o for o in response.json()["outputs"] if o["name"] == "logits")
    np.testing.assert_allclose(np.reshape(logits["data"], (3, 2)), reference("serve_ids", **ids)["logits"],
                               atol=1e-5)


def test_token_is_required(server):
    import requests

    body = {"instances": TEXTS[:1]}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = requests.post(server.url + "/v1/models/sentiment:predict", json=body, headers=headers, timeout=60)
        assert response.status_code == 401 and "bearer token" in response.json()["error"]
    for path in ("/v1/models/sentiment", "/v1/models/sentiment/metadata", "/v2/models/sentiment"):
        assert requests.get(server.url + path, timeout=60).status_code == 401


SERVE_IDS = {"input_ids": [[101, 2000, 102]], "attention_mask": [[1, 1, 1]], "token_type_ids": [[0, 0, 0]]}


@pytest.mark.parametrize("path, body, status, phrase", [
    ("v1", {"instances": ["x" * 1000] * 300}, 413, "--max-body-bytes"),
    ("v1", {"instances": ["x" * 10_000]}, 400, "10000 characters; the limit is 2000 (--max-text-chars)"),
    ("v1", {"instances": ["ok"] * 17}, 413, "the limit is 16 (--max-batch-size)"),
    ("v1", {"instances": [42]}, 400, "instances[0] must hold strings"),
    ("v1", {"inputs": {"text": "just one"}}, 400, "inputs.text must be a list"),
    ("v1", b'{"instances": ["unclosed"', 400, "line 1 column 26"),  # kserve parses it: no content type
    ("form", b'{"instances": ["unclosed"', 400, "not valid JSON"),  # curl -d's form content type: tfft parses
    ("v1", {"instances": []}, 400, '"instances" is empty'),
    ("v1", {"examples": ["x"]}, 400, 'neither "instances"'),
    ("v1", {"instances": ["x"], "signature_name": "nope"}, 400, "unknown signature 'nope'"),
    ("v1", {"instances": [{"txt": "x"}]}, 400, "unknown input 'txt'"),
    ("v1", {"signature_name": "serve_ids", "inputs": {**SERVE_IDS, "token_type_ids": None}}, 400, "must be a list"),
    ("v1", {"signature_name": "serve_ids", "inputs": {k: v for k, v in SERVE_IDS.items() if k != "token_type_ids"}},
     400, "missing input 'token_type_ids'"),
    ("v1", {"signature_name": "serve_ids", "inputs": {**SERVE_IDS, "input_ids": [[101, 102], [101]]}}, 400,
     "pad the rows"),
    ("v1", {"signature_name": "serve_ids", "inputs": {**SERVE_IDS, "input_ids": [[101, 2000, 102]] * 2}}, 400,
     "differ in batch size"),
    ("v1", {"signature_name": "serve_ids", "inputs": {**SERVE_IDS, "input_ids": [["a", "b", "c"]]}}, 400,
     "must hold integers"),
    ("v1", {"signature_name": "serve_ids", "inputs": {**SERVE_IDS, "input_ids": [[101, 99999, 102]]}}, 400,
     "not in [0, 4000)"),
    ("v1", {"signature_name": "serve_ids", "inputs": {k: [[1] * 129] for k in SERVE_IDS}}, 400, "at most 128"),
    ("v2", {"inputs": [{"name": "text", "shape": [1], "datatype": "INT32", "data": [1]}]}, 400, "takes BYTES"),
    ("v2", {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["one"]}]}, 400, "shape [2]"),
    ("v2", {"inputs": [{"name": "text", "shape": [1]}]}, 400, "malformed V2 inference request"),
    ("v2", {"inputs": [{"name": "input_ids", "shape": [1, 1], "datatype": "INT32", "data": [101]}]}, 400,
     '"parameters": {"signature_name": "serve_ids"}'),
    ("v2", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x" * 3000]}]}, 400,
     "--max-text-chars"),
    ("other", {"instances": ["x"]}, 404, "other"),
])
def test_bad_requests_get_json_errors_and_the_server_keeps_answering(server, reference, path, body, status, phrase):
    url = {"v1": "/v1/models/sentiment:predict", "form": "/v1/models/sentiment:predict",
           "v2": "/v2/models/sentiment/infer", "other": "/v1/models/other:predict"}[path]
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if path == "form" else {}
    response = server.post(url, data=body, headers=headers) if isinstance(body, bytes) else server.post(url, json=body)
    assert response.status_code == status, response.text
    assert phrase in response.json()["error"]
    assert_rows_match(server.predict({"instances": TEXTS[:1]})["predictions"], reference(text=TEXTS[:1]))


def test_concurrent_clients_get_their_own_answers(server, reference):
    import requests

    texts = [f"client {i} says: {TEXTS[i % len(TEXTS)]}" for i in range(8)]

    def client(text):
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {TOKEN}"
            return [session.post(server.url + "/v1/models/sentiment:predict", json={"instances": [text]},
                                 timeout=120).json() for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(client, texts))
    for text, responses in zip(texts, answers):
        expected = reference(text=[text])
        for response in responses:
            assert_rows_match(response["predictions"], expected)
