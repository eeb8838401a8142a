"""int8 quantization: onnxruntime's dynamic quantization of an exported ONNX file, and Keras 3's
int8 quantization of a task model in memory (for a SavedModel export).

Dynamic quantization stores the MatMul weights (and Gather'd embedding tables) as int8 and
quantizes the activations to uint8 at run time (one scale per tensor): no calibration data, a
quarter of the file size, and faster matrix products on CPUs with 8-bit dot-product instructions.
"""

import logging
import platform
from pathlib import Path

from tfft.errors import TfftError

INSTALL = "pip install -e '.[onnx]'"  # what ONNX export and int8 ONNX need


def cpu_has_vnni(cpuinfo="/proc/cpuinfo"):
    """Whether this x86 CPU has an 8-bit dot-product instruction (AVX512-VNNI or AVX-VNNI)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def int8_settings(reduce_range=None, per_channel=True):
    """onnxruntime's dynamic quantization settings for the CPU that will run the model (default
    this one), with the reason for `reduce_range`, as the export's metadata records them.

    uint8 activations times int8 weights (U8S8) use `vpmaddubsw` on x86 without VNNI, whose 16-bit
    sums can saturate: there onnxruntime advises 7-bit weights (`reduce_range=True`). VNNI
    (`vpdpbusd`) sums into 32 bits, and ARM's kernels do not saturate either, so full 8-bit
    weights are right there. Per-channel weight scales cost little speed and, on all-MiniLM-L6-v2
    with random heads, gave int8 logits 2 to 6 times closer to fp32 than one scale per tensor
    (`per_channel=False`, onnxruntime's fastest setting).
    Serving on another machine than the export's: pass `reduce_range` for that machine.
    """
    machine = platform.machine().lower()
    x86 = machine in ("x86_64", "amd64", "i386", "i686")
    vnni = x86 and cpu_has_vnni()
    if reduce_range is None:
        reduce_range = x86 and not vnni
        reason = (f"{machine} {'with' if vnni else 'without'} VNNI" if x86 else f"{machine}: not x86") + (
            ": 7-bit weights avoid U8S8 saturation" if reduce_range else ": full 8-bit weights (no saturation)")
    else:
        reason = "given"
    return {"weight_type": "QInt8", "activation_type": "QUInt8 (dynamic: one scale per tensor, at run time)",
            "per_channel": bool(per_channel), "reduce_range": bool(reduce_range), "reduce_range_reason": reason}


def quantize_onnx(model_path, output_path, settings=None):
    """Writes the dynamic int8 quantization of the ONNX file `model_path` to `output_path`; returns
    the settings used (`int8_settings()` unless given)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:
        raise TfftError(f"int8 quantization of ONNX files needs onnxruntime: {INSTALL}") from err
    settings = settings or int8_settings()
    # onnxruntime advises its pre-processing on the root logger; on tf2onnx's graph of MiniLM its
    # symbolic shape inference fails, and without it the int8 file's outputs were the same.
    advice = _DropMessage("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(Path(model_path), Path(output_path), weight_type=QuantType.QInt8,
                         per_channel=settings["per_channel"], reduce_range=settings["reduce_range"])
    finally:
        logging.getLogger().removeFilter(advice)
    return settings


class _DropMessage(logging.Filter):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def filter(self, record):
        return self.text not in record.getMessage()


def quantize_model_int8(model):
    """Keras 3's int8 quantization of `model` in place (returned for chaining): every Dense and
    Embedding layer (all of a tfft encoder's projections, the head, the embedding tables) keeps
    int8 weights with per-output-channel scales; LayerNorm and dropout stay float.

    The model then exports with `export_saved_model` as usual. Fold PEFT adapters first
    (`model.fold_adapters()`): a merged LoRA is then part of the quantized weights.

    Measured on all-MiniLM-L6-v2 (2 threads, length 128): the SavedModel shrinks from 90 MB to
    26 MB, but TensorFlow runs Keras' int8 matmuls about 3x slower than fp32 on CPU (it has no
    fused int8 kernel for them), so this suits a model that must be small, not fast; for speed on
    CPU export ONNX int8 (`export_onnx`).
    """
    import warnings

    with warnings.catch_warnings():  # one warning per LayerNorm and Dropout: "does not have a `quantize` method"
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize("int8")
    return model
