"""The `tfft` console script."""

import subprocess
import sys

from tests.conftest import FIXTURES


def run_tfft(*args):
    return subprocess.run([sys.executable, "-m", "tfft.cli", *args], capture_output=True, text=True, timeout=300)


def test_inspect_prints_architecture_and_report():
    result = run_tfft("inspect", str(FIXTURES / "encoders" / "electra"))
    assert result.returncode == 0, result.stderr
    assert "ElectraEncoder (electra)" in result.stdout
    assert "4 checkpoint tensors not used: discriminator_predictions.dense.bias" in result.stdout


def test_inspect_missing_directory_is_one_clear_error(tmp_path):
    result = run_tfft("inspect", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert f"tfft: error: no such checkpoint directory: {tmp_path / 'nope'}" in result.stderr
    assert "Traceback" not in result.stderr
