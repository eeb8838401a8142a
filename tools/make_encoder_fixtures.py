"""Build tiny random Hugging Face encoder checkpoints and record their reference outputs.

tfft's encoders must reproduce Hugging Face transformers exactly. The parity tests load these
checkpoints with tfft, run the recorded inputs and compare against the recorded outputs, so they
need neither torch nor the Hugging Face hub. This script is the only place the fixtures come from.

Each fixture is a directory under ``tests/fixtures/encoders/<name>/`` holding what
``save_pretrained`` writes (``config.json`` plus ``model.safetensors``; ``bert_sharded`` holds
several shards and an index, ``bert_bin`` a ``pytorch_model.bin``) and ``reference.npz``:

    input_ids, attention_mask [, token_type_ids]   int32 [3, 11], rows of length 11, 7 and 4,
                                                   right-padded with the config's pad_token_id
    sequence_output                                float32 [3, 11, hidden]
    pooled_output                                  float32 [3, hidden], where the model has a pooler
    hidden_states                                  float32 [layers + 1, 3, 11, hidden]
    mlm_logits                                     float32 [3, 11, vocab], *_mlm fixtures only
    discriminator_logits                           float32 [3, 11], electra only
    meta                                           JSON string: versions, classes, seed, noise

Every parameter is perturbed with seeded noise after Hugging Face's initialisation, so LayerNorm
gammas are not all one, biases are not all zero and a weight-mapping mistake (a swapped bias, a
kernel left untransposed) changes the outputs. Tied tensors are perturbed once and stay tied.
After saving, the directory is reloaded with transformers and must reproduce the recorded
outputs.

Needs torch and transformers (CPU is enough). Deterministic for a given torch version.

Example:
    python tools/make_encoder_fixtures.py                 # rebuild all fixtures
    python tools/make_encoder_fixtures.py bert albert     # rebuild only these
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "encoders"
ROW_LENGTHS = (11, 7, 4)
FIRST_REAL_ID = 3  # every pad_token_id here is 0 or 1, so real tokens never equal pad
NOISE_STD = 0.1

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=128)
_BERT = dict(_TINY, max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
# RoBERTa positions start at pad_token_id + 1, so the table needs two rows beyond the longest sequence.
_ROBERTA = dict(
    _TINY, max_position_embeddings=66, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-5, pad_token_id=1
)
# DistilBERT has no layer_norm_eps field: its LayerNorms use a hard-coded 1e-12.
_DISTILBERT = dict(
    dim=32, n_layers=2, n_heads=4, hidden_dim=37, vocab_size=128, max_position_embeddings=64, activation="gelu"
)
_ELECTRA = dict(_BERT, embedding_size=16)
_ALBERT = dict(
    _BERT, num_hidden_layers=3, embedding_size=16, num_hidden_groups=1, inner_group_num=1, hidden_act="gelu_new"
)


@dataclasses.dataclass(frozen=True)
class FixtureSpec:
    """One fixture: which Hugging Face class to build, from which config, and how to save it."""

    name: str
    model_class: str  # a class in `transformers`
    config: dict[str, Any]
    seed: int  # seeds initialisation, perturbation and inputs; equal seeds give equal weights
    head_output: str | None = None  # reference.npz key for the head's logits
    save_format: str = "safetensors"  # "safetensors", "sharded" or "bin"


FIXTURES = [
    FixtureSpec("bert", "BertModel", _BERT, seed=1),
    FixtureSpec("bert_mlm", "BertForMaskedLM", _BERT, seed=2, head_output="mlm_logits"),
    FixtureSpec("bert_sharded", "BertModel", _BERT, seed=1, save_format="sharded"),
    FixtureSpec("bert_bin", "BertModel", _BERT, seed=1, save_format="bin"),
    FixtureSpec("roberta", "RobertaModel", _ROBERTA, seed=3),
    FixtureSpec("roberta_mlm", "RobertaForMaskedLM", _ROBERTA, seed=4, head_output="mlm_logits"),
    FixtureSpec("xlm_roberta", "XLMRobertaModel", _ROBERTA, seed=5),
    FixtureSpec("distilbert", "DistilBertModel", _DISTILBERT, seed=6),
    FixtureSpec("distilbert_mlm", "DistilBertForMaskedLM", _DISTILBERT, seed=7, head_output="mlm_logits"),
    FixtureSpec("electra", "ElectraForPreTraining", _ELECTRA, seed=8, head_output="discriminator_logits"),
    FixtureSpec("albert", "AlbertModel", _ALBERT, seed=9),
    FixtureSpec("albert_mlm", "AlbertForMaskedLM", _ALBERT, seed=10, head_output="mlm_logits"),
]

# Small enough that the ~100 KB tiny BERT spreads over several shards.
SHARD_SIZE = "40KB"


def build_model(spec: FixtureSpec) -> torch.nn.Module:
    """Random-initialise `spec`'s model, then perturb every parameter with seeded noise."""
    model_class = getattr(transformers, spec.model_class)
    config = model_class.config_class(**spec.config, attn_implementation="eager")
    torch.manual_seed(spec.seed)
    model = model_class(config)
    model.eval()
    generator = torch.Generator().manual_seed(spec.seed + 1000)
    with torch.no_grad():
        # named_parameters() lists a tied tensor once, so it is perturbed once and stays tied.
        for _, param in sorted(model.named_parameters()):
            param.add_(torch.randn(param.shape, generator=generator) * NOISE_STD)
    return model


def make_inputs(spec: FixtureSpec, config: transformers.PretrainedConfig) -> dict[str, np.ndarray]:
    """Three right-padded rows of different lengths; token types only where the model has them.

    Token types are 0 on the first half of each row's real tokens and on padding, random 0/1 on the
    second half.
    """
    rng = np.random.default_rng(spec.seed)
    batch, width = len(ROW_LENGTHS), max(ROW_LENGTHS)
    input_ids = np.full((batch, width), config.pad_token_id, dtype=np.int32)
    attention_mask = np.zeros((batch, width), dtype=np.int32)
    token_type_ids = np.zeros((batch, width), dtype=np.int32)
    for row, length in enumerate(ROW_LENGTHS):
        input_ids[row, :length] = rng.integers(FIRST_REAL_ID, config.vocab_size, size=length)
        attention_mask[row, :length] = 1
        token_type_ids[row, length // 2 : length] = rng.integers(0, 2, size=length - length // 2)
        token_type_ids[row, length - 1] = 1  # every row uses type 1 at least once, even if the draw was all 0
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if getattr(config, "type_vocab_size", 0) > 0:
        inputs["token_type_ids"] = token_type_ids
    return inputs


@torch.no_grad()
def run_model(
    model: torch.nn.Module, inputs: dict[str, np.ndarray], head_output: str | None
) -> dict[str, np.ndarray]:
    """The base model's outputs (with every hidden state) and, for heads, the head's logits."""
    torch_inputs = {key: torch.from_numpy(value).long() for key, value in inputs.items()}
    base = model.base_model
    base_out = base(**torch_inputs, output_hidden_states=True)
    outputs = {
        "sequence_output": base_out.last_hidden_state,
        "hidden_states": torch.stack(base_out.hidden_states),
    }
    if getattr(base_out, "pooler_output", None) is not None:
        outputs["pooled_output"] = base_out.pooler_output
    if head_output is not None:
        outputs[head_output] = model(**torch_inputs).logits
    return {key: value.numpy().astype(np.float32) for key, value in outputs.items()}


def save_checkpoint(model: torch.nn.Module, save_format: str, directory: Path) -> None:
    """Write config and weights the way a user's checkpoint would look."""
    if save_format == "safetensors":
        model.save_pretrained(directory)
    elif save_format == "sharded":
        model.save_pretrained(directory, max_shard_size=SHARD_SIZE)
    elif save_format == "bin":
        # transformers 5 always writes safetensors (`safe_serialization=False` is silently
        # ignored), so the legacy pickle replaces the file save_pretrained wrote; config.json
        # stays exactly what save_pretrained writes.
        model.save_pretrained(directory)
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    else:
        raise ValueError(f"unknown save_format {save_format!r}")


def check_reload(
    spec: FixtureSpec, directory: Path, inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]
) -> float:
    """Reload the saved directory with transformers; fail unless it reproduces `expected`."""
    model_class = getattr(transformers, spec.model_class)
    model, info = model_class.from_pretrained(
        directory, attn_implementation="eager", output_loading_info=True
    )
    problems = {key: value for key, value in info.items() if value}
    if problems:
        raise RuntimeError(f"{spec.name}: reloading {directory} reported {problems}")
    model.eval()
    actual = run_model(model, inputs, spec.head_output)
    if actual.keys() != expected.keys():
        raise RuntimeError(f"{spec.name}: reloaded outputs {sorted(actual)} != recorded {sorted(expected)}")
    worst = 0.0
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=1e-6, err_msg=f"{spec.name}: {key}")
        worst = max(worst, float(np.abs(actual[key] - value).max()))
    return worst


def make_fixture(spec: FixtureSpec, out_dir: Path) -> None:
    """Build, save, record and verify one fixture directory."""
    model = build_model(spec)
    inputs = make_inputs(spec, model.config)
    outputs = run_model(model, inputs, spec.head_output)

    directory = out_dir / spec.name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    save_checkpoint(model, spec.save_format, directory)

    meta = {
        "fixture": spec.name,
        "hf_class": spec.model_class,
        "hf_base_class": type(model.base_model).__name__,
        "save_format": spec.save_format,
        "seed": spec.seed,
        "noise_std": NOISE_STD,
        "row_lengths": list(ROW_LENGTHS),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "made_by": "python tools/make_encoder_fixtures.py",
    }
    np.savez_compressed(directory / "reference.npz", **inputs, **outputs, meta=np.array(json.dumps(meta)))

    worst = check_reload(spec, directory, inputs, outputs)
    files = ", ".join(sorted(path.name for path in directory.iterdir()))
    print(f"{spec.name}: {files} (reload max abs diff {worst:.1e})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="fixtures to rebuild (default: all)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    known = {spec.name: spec for spec in FIXTURES}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown fixture(s) {unknown}; known: {sorted(known)}")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # same reduction order on every machine
    for name in args.names or known:
        make_fixture(known[name], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
