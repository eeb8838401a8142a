"""Read and write checkpoint weights as numpy arrays.

Safetensors is the format tfft reads first and the only one it writes. `pytorch_model.bin`
is read only when the checkpoint has no safetensors and torch is installed, and then only
with `weights_only=True`, so a checkpoint can never run code on load.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from tfft.errors import CheckpointError

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
PYTORCH_INDEX_FILE = "pytorch_model.bin.index.json"

# Half-precision checkpoints are widened on load: Keras builds its variables in float32.
_HALF_DTYPES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def load_state_dict(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every tensor of the checkpoint in `model_dir`, keyed by its Hugging Face name.

    Looks for, in order: `model.safetensors`, `model.safetensors.index.json` (sharded),
    then `pytorch_model.bin` / `pytorch_model.bin.index.json` (needs torch). float16 and
    bfloat16 tensors come back as float32.

    Example:
        >>> state = load_state_dict(resolve_pretrained_dir("sentence-transformers/all-MiniLM-L6-v2"))
        >>> state["embeddings.word_embeddings.weight"].shape
        (30522, 384)
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"no such checkpoint directory: {model_dir}")
    if (model_dir / SAFETENSORS_FILE).is_file():
        return load_safetensors(model_dir / SAFETENSORS_FILE)
    if (model_dir / SAFETENSORS_INDEX_FILE).is_file():
        return _load_sharded(model_dir / SAFETENSORS_INDEX_FILE, load_safetensors)
    if (model_dir / PYTORCH_FILE).is_file():
        _require_torch(model_dir / PYTORCH_FILE)
        return _load_pytorch_bin(model_dir / PYTORCH_FILE)
    if (model_dir / PYTORCH_INDEX_FILE).is_file():
        _require_torch(model_dir / PYTORCH_INDEX_FILE)
        return _load_sharded(model_dir / PYTORCH_INDEX_FILE, _load_pytorch_bin)
    looked_for = ", ".join((SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE, PYTORCH_FILE, PYTORCH_INDEX_FILE))
    raise CheckpointError(f"no weights file in {model_dir}: looked for {looked_for}")


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load one safetensors file into numpy arrays (float16 and bfloat16 widened to float32)."""
    path = Path(path)
    try:
        with safe_open(path, framework="numpy") as f:
            return {name: _widen(f.get_tensor(name)) for name in f.keys()}
    except (SafetensorError, OSError, struct.error) as e:
        raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e


def save_state_dict(
    tensors: Mapping[str, Any],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `tensors` to a safetensors file at `path`, atomically.

    The file is written next to `path` under a temporary name and moved into place only
    once complete, so an error never leaves a half-written checkpoint behind.
    `metadata` defaults to `{"format": "pt"}`, which transformers expects.
    """
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    metadata = dict(metadata) if metadata is not None else {"format": "pt"}
    with _atomic_target(Path(path)) as tmp:
        save_file(arrays, tmp, metadata=metadata)


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` as indented JSON to `path`, atomically (used for config.json)."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    with _atomic_target(Path(path)) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[str]:
    """Yield a temporary file name in `path`'s directory; move it onto `path` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name rather than mkstemp, whose 0600 mode would end up on the final file.
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        # Flush to disk before the rename, or a crash could leave an empty file under `path`.
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # safetensors creates its files 0600; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _widen(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype in _HALF_DTYPES else array


def _load_sharded(
    index_path: Path, load_shard: Callable[[Path], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Load the shards listed in a `*.index.json` weight map, checking each listed tensor."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        shards: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            shards.setdefault(shard, []).append(name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{index_path} is not a valid weights index (needs a 'weight_map'): {e!r}") from e

    state: dict[str, np.ndarray] = {}
    for shard, names in shards.items():
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"shard {shard!r} listed in {index_path} is missing from {index_path.parent}")
        tensors = load_shard(shard_path)
        missing = [name for name in names if name not in tensors]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise CheckpointError(
                f"tensor {missing[0]!r}{more} is listed in {index_path.name} but absent from shard {shard_path}"
            )
        state.update(tensors)
    return state


def _require_torch(found: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CheckpointError(
            f"{found.parent} has only PyTorch weights ({found.name}), and reading them needs torch: "
            f"pip install torch, or convert the checkpoint to {SAFETENSORS_FILE}"
        ) from None


def _load_pytorch_bin(path: Path) -> dict[str, np.ndarray]:
    """Load a `pytorch_model.bin` with torch's safe unpickler and convert it to numpy."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        # torch's own message (kept as __cause__) is long and suggests weights_only=False; we never do that.
        raise CheckpointError(
            f"cannot load {path} with torch.load(weights_only=True): the file is corrupt or holds "
            f"objects other than tensors, which tfft never unpickles ({type(e).__name__})"
        ) from e
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a dict of tensors")
    arrays = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        arrays[name] = tensor.numpy()
    return arrays
