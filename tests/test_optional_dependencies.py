"""The suite's guard for optional dependencies (tests/optional_modules.py), run on small inner test files.

A test that needs torch must say `@pytest.mark.requires("torch")`: it then runs (in a subprocess
that has torch) where torch is installed, and skips with a reason where it is not. An unmarked
test that reaches for torch fails even where torch is installed, so CI catches it before a user
without torch sees an error.
"""

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]

INNER_TESTS = textwrap.dedent(
    """
    import importlib.util
    import pytest

    def test_unmarked_import():
        import torch

    def test_unmarked_importorskip():
        pytest.importorskip("torch")

    def test_unmarked_through_tfft(tmp_path):
        from tfft.weights import load_state_dict

        (tmp_path / "pytorch_model.bin").write_bytes(b"weights")
        load_state_dict(tmp_path)

    def test_unmarked_sees_no_torch():
        assert importlib.util.find_spec("torch") is None

    @pytest.mark.requires("torch")
    def test_marked():
        import torch

        assert torch.ones(2).sum().item() == 2.0

    @pytest.mark.requires("torch")
    def test_marked_failing():
        import torch

        assert torch.ones(2).sum().item() == 3.0
    """
)


@pytest.fixture(autouse=True)
def inner_environment(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the inner runs use tests/conftest.py's hooks
    monkeypatch.delenv("TFFT_TESTS_OPTIONAL_REPORTS", raising=False)  # set where this file runs as marked


@pytest.fixture
def run_inner(pytester, monkeypatch):
    def run(pretend_missing=False):
        pytester.makeconftest("from tests.conftest import *  # noqa: F401,F403\n")
        pytester.makepyfile(test_inner=INNER_TESTS)
        if pretend_missing:
            monkeypatch.setenv("TFFT_TESTS_PRETEND_MISSING", "torch")
        return pytester.runpytest_subprocess("-v", "-rs", "-p", "no:cacheprovider")

    return run


@pytest.mark.requires("torch")
def test_with_torch_marked_tests_run_and_unmarked_ones_fail(run_inner):
    result = run_inner()
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines(["*test_inner.py::test_marked PASSED*", "*test_inner.py::test_marked_failing FAILED*",
                                 "*assert 2.0 == 3.0*"])
    for name in ("test_unmarked_import", "test_unmarked_importorskip", "test_unmarked_through_tfft"):
        result.stdout.fnmatch_lines([f"*{name} needs the optional module 'torch' but is not marked "
                                     "@pytest.mark.requires('torch')*"])


def test_without_torch_marked_tests_skip_with_the_reason(run_inner):
    result = run_inner(pretend_missing=True)
    # As on a machine without torch: the unmarked tests that need it fail (or importorskip skips).
    result.assert_outcomes(passed=1, failed=2, skipped=3)
    result.stdout.fnmatch_lines(["*test_inner.py::test_marked SKIPPED*",
                                 "SKIPPED*test_inner.py:*: needs torch (pip install torch==2.13.0)"])


def test_unknown_optional_module_is_a_usage_error(pytester):
    pytester.makeconftest("from tests.conftest import *  # noqa: F401,F403\n")
    pytester.makepyfile(test_inner="import pytest\n\n@pytest.mark.requires('tourch')\ndef test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*requires('tourch'): not in OPTIONAL_MODULES*"])
