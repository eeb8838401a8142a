import shutil

import numpy as np
import pytest

from tests.conftest import FIXTURES

ENCODER_FIXTURES = FIXTURES / "encoders"
ALL = sorted(p.name for p in ENCODER_FIXTURES.iterdir() if (p / "config.json").is_file())


def fixture_params(names):
    """`names` as pytest params; those with only PyTorch weights (`bert_bin`) need torch to load."""
    return [pytest.param(name, marks=pytest.mark.requires("torch"))
            if not any((ENCODER_FIXTURES / name).glob("*.safetensors*")) else name for name in names]
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def reference(name):
    return dict(np.load(ENCODER_FIXTURES / name / "reference.npz"))


def reference_inputs(ref):
    return {k: ref[k] for k in INPUT_KEYS if k in ref}


@pytest.fixture
def fixture_copy(tmp_path):
    """Copies a fixture checkpoint into tmp_path so a test can break it."""

    def copy(name):
        return shutil.copytree(ENCODER_FIXTURES / name, tmp_path / name)

    return copy
