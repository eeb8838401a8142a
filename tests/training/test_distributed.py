"""MirroredStrategy on two logical CPU devices follows the one-device loss trajectory.

Logical devices must be configured before TensorFlow initializes its devices, so the runs
happen in a fresh process (distributed_script.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("distributed_script.py")


@pytest.fixture(scope="module")
def runs():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_devices_follow_the_one_device_trajectory(runs):
    one, two = runs["one_device"], runs["two_devices"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["steps"] == two["steps"] == 12
    np.testing.assert_allclose(two["losses"], one["losses"], atol=2e-3)
    assert one["losses"][-1] < one["losses"][0]  # It trains.
    # Norms of the global-batch gradient (clipping uses the summed gradient, not a replica's).
    np.testing.assert_allclose(two["norms"], one["norms"], rtol=2e-2)
    assert two["max_weight_difference"] < 1e-2


def test_gradient_accumulation_under_mirrored_strategy(runs):
    two, accumulated = runs["two_devices"], runs["two_devices_accumulated"]
    assert accumulated["steps"] == 12  # 24 micro-batches, 12 updates.
    np.testing.assert_allclose(accumulated["losses"], two["losses"], rtol=1e-4)
    np.testing.assert_allclose(accumulated["norms"], two["norms"], rtol=1e-3)
    assert abs(accumulated["max_weight_difference"] - two["max_weight_difference"]) < 1e-4


def test_weight_decay_skips_layer_norm_and_bias_under_the_strategy(runs):
    factors = runs["weight_decay_factors"]
    for path, factor in factors.items():
        skipped = path.rsplit("/", 1)[-1] in ("gamma", "beta", "bias")
        assert factor == pytest.approx(1.0 if skipped else 1 - 0.1 * 0.5), path
    assert any(path.endswith("layer_1/output_norm/gamma") for path in factors)
