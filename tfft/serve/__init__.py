"""`tfft serve`: a KServe predictor for tfft exports that speaks TF Serving's REST API.

    tfft serve runs/sentiment --http-port 8501
    curl -d '{"instances": ["A gripping film."]}' localhost:8501/v1/models/sentiment:predict

- `backend`: the model behind a small interface (`signatures`, `predict` on numpy), so each
  export format plugs in the same way (SavedModel, ONNX); `find_export` resolves run and export
  directories.
- `protocol`: TF Serving's JSON (row and columnar) and V2 tensors to numpy and back, with the
  per-request checks; `limits`: what a request may ask (`Limits`).
- `middleware`: the bearer token, the body size limit and the timeout, as ASGI middleware.
- `server`: the kserve Model (`TfftModel`) and `serve`; imports kserve (`pip install -e '.[serve]'`).
- `cli`: the `tfft serve` subcommand (`add_parser`), which imports neither kserve nor TensorFlow.

Names are imported on first use, so adding the subcommand to `tfft` costs nothing.
"""

from tfft._lazy import lazy_getattr

_EXPORTS = {
    "Backend": "tfft.serve.backend",
    "OnnxBackend": "tfft.serve.backend",
    "SavedModelBackend": "tfft.serve.backend",
    "TensorInfo": "tfft.serve.backend",
    "find_export": "tfft.serve.backend",
    "load_backend": "tfft.serve.backend",
    "Limits": "tfft.serve.limits",
    "RequestError": "tfft.serve.protocol",
    "TfftModel": "tfft.serve.server",
    "serve": "tfft.serve.server",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("tfft.serve", _EXPORTS)
