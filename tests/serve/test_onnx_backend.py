"""An ONNX export behind tfft serve's backend interface answers TF Serving requests as OnnxModel does."""

import numpy as np
import pytest

from tfft.serve import protocol
from tfft.serve.limits import Limits

pytestmark = pytest.mark.requires("onnxruntime", "tf2onnx")

TEXTS = ["A gripping, funny film.", "Dull, long and pointless!", "naïve café 电影 🎬"]


@pytest.fixture(scope="module")
def onnx_dir(tiny_checkpoint, tmp_path_factory):
    """An ONNX export where `tfft export RUN_DIR --format onnx` writes it: RUN_DIR/onnx/."""
    from tfft.export.onnx import export_onnx
    from tfft.tasks import SequenceClassifier

    classifier = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])
    return export_onnx(classifier, tmp_path_factory.mktemp("run") / "onnx", quantize=False).directory


def test_onnx_export_serves_text_and_ids(onnx_dir):
    from tfft.export.onnx import OnnxModel
    from tfft.serve.backend import ModelInputError, OnnxBackend, load_backend

    backend = load_backend(onnx_dir.parent, onnx=True)  # the run directory
    assert isinstance(backend, OnnxBackend) and sorted(backend.signatures) == ["serve_ids", "serving_default"]
    assert backend.signatures["serving_default"]["inputs"] == {"text": ("string", (None,))}
    assert backend.signatures["serve_ids"]["inputs"]["input_ids"] == ("int32", (None, None))
    reference = OnnxModel(onnx_dir)
    expected = reference.predict_texts(TEXTS)

    request = protocol.parse_predict({"instances": TEXTS}, backend.signatures, Limits())
    predictions = protocol.predict_response(backend.predict(request.signature_name, request.inputs), request)
    np.testing.assert_allclose([p["probabilities"] for p in predictions["predictions"]], expected["probabilities"],
                               atol=1e-6)

    ids = reference.tokenize(TEXTS)
    body = {"signature_name": "serve_ids", "inputs": {k: v.tolist() for k, v in ids.items()}}
    request = protocol.parse_predict(body, backend.signatures, Limits())
    outputs = protocol.predict_response(backend.predict("serve_ids", request.inputs), request)["outputs"]
    np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=1e-6)

    ids["input_ids"][0, 1] = 99999
    with pytest.raises(ModelInputError, match="out of data bounds"):
        backend.predict("serve_ids", ids)
