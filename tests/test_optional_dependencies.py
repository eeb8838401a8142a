"""The suite's guard for optional dependencies (tests/conftest.py), run on small inner test files.

A test that needs torch must say `@pytest.mark.requires("torch")`: it then skips with a reason
where torch is absent. An unmarked test that reaches for torch fails even where torch is
installed, so CI catches it before a user without torch sees an error.
"""

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the inner runs load tests/conftest.py as a plugin

INNER_TESTS = textwrap.dedent(
    """
    import pytest

    def test_unmarked_import():
        import torch

    def test_unmarked_importorskip():
        pytest.importorskip("torch")

    def test_unmarked_through_tfft(tmp_path):
        from tfft.weights import load_state_dict

        (tmp_path / "pytorch_model.bin").write_bytes(b"weights")
        load_state_dict(tmp_path)

    @pytest.mark.requires("torch")
    def test_marked():
        import torch

    def test_without_torch():
        assert True
    """
)


def run_inner(pytester, torch_installed):
    pytester.makepyfile(test_inner=INNER_TESTS)
    if not torch_installed:  # find_spec and import both see no torch
        pytester.makeconftest("import sys\nsys.modules['torch'] = None\n")
    return pytester.runpytest_subprocess("-p", "tests.conftest", "-v", "-rs", "-p", "no:cacheprovider")


@pytest.mark.parametrize("torch_installed", [True, False])
def test_unmarked_tests_that_need_torch_fail(pytester, torch_installed):
    result = run_inner(pytester, torch_installed)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 3 and outcomes["passed"] >= 1
    for name in ("test_unmarked_import", "test_unmarked_importorskip", "test_unmarked_through_tfft"):
        result.stdout.fnmatch_lines([f"*{name} imports the optional module 'torch' but is not marked "
                                     "@pytest.mark.requires('torch')*"])


def test_marked_test_skips_with_reason_without_torch(pytester):
    result = run_inner(pytester, torch_installed=False)
    assert result.parseoutcomes()["skipped"] == 1
    result.stdout.fnmatch_lines(["*test_inner.py::test_marked SKIPPED*",
                                 "SKIPPED*test_inner.py:*: needs torch (pip install torch==2.13.0)"])


def test_unknown_optional_module_is_a_usage_error(pytester):
    pytester.makepyfile(test_inner="import pytest\n\n@pytest.mark.requires('tourch')\ndef test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*requires('tourch'): not in OPTIONAL_MODULES*"])
