"""load_state_dict / save_state_dict on small checkpoints written into tmp_path."""

import json
import os
import struct
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from tfft.errors import CheckpointError
from tfft.weights import load_safetensors, load_state_dict, save_state_dict, write_json_atomic


def small_state():
    return {
        "encoder.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "encoder.bias": np.array([0.5, -1.0, 2.0], dtype=np.float32),
        "position_ids": np.arange(5, dtype=np.int64),
    }


def assert_same_state(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        np.testing.assert_array_equal(actual[name], value)


def write_sharded(model_dir, state, shards):
    """Write `state` as safetensors shards ({shard file: [tensor names]}) plus their index."""
    weight_map = {}
    for shard, names in shards.items():
        save_file({name: state[name] for name in names}, model_dir / shard)
        weight_map.update({name: shard for name in names})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))


def test_single_file_round_trip(tmp_path):
    state = small_state()
    save_state_dict(state, tmp_path / "model.safetensors")
    assert_same_state(load_state_dict(tmp_path), state)
    with safe_open(tmp_path / "model.safetensors", framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}


def test_save_makes_arrays_contiguous(tmp_path):
    transposed = np.arange(6, dtype=np.float32).reshape(2, 3).T
    save_state_dict({"w": transposed}, tmp_path / "model.safetensors")
    np.testing.assert_array_equal(load_state_dict(tmp_path)["w"], transposed)


def test_sharded_checkpoint(tmp_path):
    state = small_state()
    write_sharded(
        tmp_path,
        state,
        {
            "model-00001-of-00002.safetensors": ["encoder.weight"],
            "model-00002-of-00002.safetensors": ["encoder.bias", "position_ids"],
        },
    )
    assert_same_state(load_state_dict(tmp_path), state)


def point_index_entry(directory, tensor, shard):
    """Edits the index so it lists `tensor` in `shard`, as a broken checkpoint would."""
    index_path = directory / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"][tensor] = shard
    index_path.write_text(json.dumps(index))


def test_sharded_missing_shard_is_named(tmp_path):
    state = small_state()
    write_sharded(tmp_path, state, {"model-00001-of-00002.safetensors": list(state)})
    point_index_entry(tmp_path, "encoder.bias", "model-00002-of-00002.safetensors")
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        load_state_dict(tmp_path)


def test_sharded_tensor_missing_from_shard_is_named(tmp_path):
    state = small_state()
    write_sharded(tmp_path, state, {"model-00001-of-00001.safetensors": list(state)})
    point_index_entry(tmp_path, "pooler.dense.weight", "model-00001-of-00001.safetensors")
    with pytest.raises(CheckpointError, match="'pooler.dense.weight'.*model-00001-of-00001.safetensors"):
        load_state_dict(tmp_path)


def test_index_without_weight_map_is_an_error(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(CheckpointError, match="model.safetensors.index.json is not a valid weights index"):
        load_state_dict(tmp_path)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "model.safetensors"
    save_state_dict({"w": np.ones((64, 64), np.float32)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"\xff" * 64,  # header length far beyond the file
        struct.pack("<Q", 12) + b"{not json!!}",
        b"abc",  # shorter than the 8-byte header length
        b"",
    ],
)
def test_garbage_header_is_named(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot read safetensors file .*model.safetensors"):
        load_safetensors(path)


def test_bfloat16_loads_as_float32(tmp_path):
    # Written by hand from the safetensors layout, so the test does not depend on our writer:
    # 8-byte little-endian header size, JSON header, raw data. bf16 is float32's upper half.
    values = np.array([1.0, -2.5, 0.15625, 2.0**120, 0.0, -65536.0], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, len(raw)]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + raw)
    loaded = load_state_dict(tmp_path)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.reshape(2, 3))


def test_float16_loads_as_float32(tmp_path):
    values = np.array([0.5, -1.25, 1024.0], dtype=np.float16)
    save_file({"w": values}, tmp_path / "model.safetensors")
    loaded = load_state_dict(tmp_path)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values.astype(np.float32))


def test_no_weights_file_lists_what_was_looked_for(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as err:
        load_state_dict(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        assert name in message


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_state_dict(tmp_path / "missing")


def test_safetensors_preferred_over_pytorch_bin(tmp_path):
    state = small_state()
    save_state_dict(state, tmp_path / "model.safetensors")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    assert_same_state(load_state_dict(tmp_path), state)


def test_pytorch_bin_without_torch_explains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    (tmp_path / "pytorch_model.bin").write_bytes(b"anything")
    with pytest.raises(CheckpointError, match=r"pip install torch.*model\.safetensors"):
        load_state_dict(tmp_path)


@pytest.mark.requires("torch")
def test_pytorch_bin_loads_with_torch(tmp_path):
    import torch

    torch.save(
        {
            "w": torch.tensor([[1.0, -2.5], [0.15625, 3.0]], dtype=torch.bfloat16),
            "b": torch.tensor([0.5, 1.0]),
            "ids": torch.arange(3),
        },
        tmp_path / "pytorch_model.bin",
    )
    state = load_state_dict(tmp_path)
    assert_same_state(
        state,
        {
            "w": np.array([[1.0, -2.5], [0.15625, 3.0]], dtype=np.float32),
            "b": np.array([0.5, 1.0], dtype=np.float32),
            "ids": np.arange(3, dtype=np.int64),
        },
    )


@pytest.mark.requires("torch")
def test_sharded_pytorch_bin_loads_with_torch(tmp_path):
    import torch

    torch.save({"a": torch.ones(2)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.zeros(3)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_same_state(load_state_dict(tmp_path), {"a": np.ones(2, np.float32), "b": np.zeros(3, np.float32)})


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.requires("torch")
def test_pytorch_bin_with_pickled_code_is_refused(tmp_path):
    import torch

    marker = tmp_path / "code_ran"
    torch.save({"w": torch.ones(2), "payload": _RunsCodeWhenUnpickled(str(marker))}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_state_dict(tmp_path)
    assert not marker.exists()


def test_atomic_save_leaves_only_the_target(tmp_path):
    save_state_dict(small_state(), tmp_path / "model.safetensors")
    write_json_atomic({"hidden_size": 4}, tmp_path / "config.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text()) == {"hidden_size": 4}


def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "model.safetensors"
    state = small_state()
    save_state_dict(state, path)
    with pytest.raises(Exception):
        save_state_dict({"w": np.array(["not a number"])}, path)  # safetensors has no string dtype
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert_same_state(load_state_dict(tmp_path), state)


def test_atomic_files_get_ordinary_permissions(tmp_path):
    (tmp_path / "plain.json").write_text("{}")
    write_json_atomic({}, tmp_path / "config.json")
    assert (tmp_path / "config.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode
