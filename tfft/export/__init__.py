"""Exporting trained models for serving: SavedModel for TF Serving, ONNX for onnxruntime.

Names are imported on first use, so a serving host can run `tfft.export.onnx.OnnxModel` with
onnxruntime and tokenizers alone (no TensorFlow import).
"""

from tfft._lazy import lazy_getattr

_EXPORTS = {
    "export_saved_model": "tfft.export.saved_model",
    "export_onnx": "tfft.export.onnx",
    "OnnxModel": "tfft.export.onnx",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("tfft.export", _EXPORTS)
