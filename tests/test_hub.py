"""resolve_pretrained_dir: local directories, Hub ids, and the offline cache. No test uses the network."""

from pathlib import Path

import pytest
from huggingface_hub import constants

from tfft.errors import CheckpointError
from tfft.hub import hub_cache_dir, resolve_pretrained_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """Every test runs offline against an empty cache of its own."""
    cache = tmp_path / "hf_cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return cache


def make_cached_repo(cache: Path, repo_id: str, files, ref: str = "main") -> Path:
    """Lay out a repo the way huggingface_hub caches it; return its snapshot directory."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / ref).write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name in files:
        (snapshot / name).write_text("{}")
    return snapshot


def test_local_directory_is_returned_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_pretrained_dir(tmp_path) == tmp_path
    assert resolve_pretrained_dir(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("name", ["./no_such_model", "../no_such_model", "~/no_such_model_tfft"])
def test_missing_relative_path_is_an_error(name):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        resolve_pretrained_dir(name)


def test_missing_absolute_path_is_an_error(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(CheckpointError, match="no such checkpoint directory") as err:
        resolve_pretrained_dir(str(missing))
    assert str(missing) in str(err.value)


def test_file_instead_of_directory_is_an_error(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match="it is a file"):
        resolve_pretrained_dir(weights)


@pytest.mark.parametrize("name", ["a/b/c", "bad name", "org/name.git", "org--x/y"])
def test_invalid_hub_id_is_an_error(name):
    with pytest.raises(CheckpointError, match="neither an existing directory nor a valid Hugging Face Hub id"):
        resolve_pretrained_dir(name)


def test_empty_name_is_an_error():
    with pytest.raises(CheckpointError, match="empty checkpoint name"):
        resolve_pretrained_dir("")


def test_offline_and_not_cached_names_id_and_cache(offline_cache):
    with pytest.raises(CheckpointError) as err:
        resolve_pretrained_dir("org/name")
    message = str(err.value)
    assert "'org/name'" in message
    assert str(offline_cache) in message
    assert "HF_HUB_OFFLINE" in message


def test_cache_dir_follows_hf_home_at_call_time(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache") as err:
        resolve_pretrained_dir("org/name")
    assert str(tmp_path / "home" / "hub") in str(err.value)


def test_offline_and_cached_resolves_to_snapshot(offline_cache):
    snapshot = make_cached_repo(offline_cache, "org/name", ["config.json", "model.safetensors", "vocab.txt"])
    assert resolve_pretrained_dir("org/name") == snapshot
    assert resolve_pretrained_dir("org/name", revision=COMMIT) == snapshot


def test_offline_single_name_id(offline_cache):
    snapshot = make_cached_repo(offline_cache, "bert-tiny", ["config.json", "model.safetensors"])
    assert resolve_pretrained_dir("bert-tiny") == snapshot


def test_offline_pytorch_only_repo_resolves(offline_cache):
    snapshot = make_cached_repo(offline_cache, "org/old", ["config.json", "pytorch_model.bin"])
    assert resolve_pretrained_dir("org/old") == snapshot


def test_offline_unknown_revision_is_an_error(offline_cache):
    make_cached_repo(offline_cache, "org/name", ["config.json", "model.safetensors"])
    with pytest.raises(CheckpointError, match="revision 'v2'.*not in the local Hugging Face cache"):
        resolve_pretrained_dir("org/name", revision="v2")


@pytest.fixture
def unreachable_hub(monkeypatch):
    """Online mode, but the Hub endpoint is a closed port on this machine: nothing leaves it."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")


def test_unreachable_hub_falls_back_to_cache(offline_cache, unreachable_hub):
    snapshot = make_cached_repo(offline_cache, "org/name", ["config.json", "model.safetensors"])
    assert resolve_pretrained_dir("org/name") == snapshot


def test_unreachable_hub_and_not_cached_is_an_error(offline_cache, unreachable_hub):
    with pytest.raises(CheckpointError, match="could not reach the Hugging Face Hub") as err:
        resolve_pretrained_dir("org/name")
    assert "'org/name'" in str(err.value)
    assert str(offline_cache) in str(err.value)


def test_package_scheme_resolves_installed_package_dir():
    path = resolve_pretrained_dir("package:tfft/encoders")
    assert path.is_dir() and (path / "encoder.py").is_file()
    with pytest.raises(CheckpointError, match="no installed Python package named 'no_such_pkg'"):
        resolve_pretrained_dir("package:no_such_pkg/model_files")
    with pytest.raises(CheckpointError, match="has no directory 'missing'"):
        resolve_pretrained_dir("package:tfft/missing")
