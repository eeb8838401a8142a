"""CPU inference of one fine-tuned classifier, tfft's paths beside the reference ones, in one run.

The same weights (a finished run's model, e.g. `tfft train configs/sentiment_minilm.yaml`) answer
the same real sentences (the run's test set), tokenized and padded to one length (128 tokens):

  tfft SavedModel        the run's export, `serve_ids`, fp32 (and Keras' int8 with --keras-int8)
  tfft ONNX              `tfft.export.export_onnx`, in onnxruntime, fp32 and int8 (dynamic)
  PyTorch eager          transformers' AutoModelForSequenceClassification on `save_pretrained`
  ONNX of PyTorch        torch.onnx.export of that model, in onnxruntime, fp32

Batch 1 sends each sentence at its own length (truncated at 128; a single request is not padded),
batch 32 pads every row to 128. Every system gets the same thread count (--threads: TF intra-op, torch, onnxruntime intra-op).
Measurements are interleaved: each round times every system in turn (batch 1 over --latency-calls
sentences, then batch 32 for --seconds), so load from anything else on the machine hits each
alike; the table reports batch-1 p50/p95 latency over all rounds and batch-32 throughput (median
round). Accuracy on the test set is reported for the fp32 and int8 variants, and file sizes.

With --serve-seconds, `tfft serve` then runs the SavedModel on loopback under --clients concurrent
clients, each sending one-text predict requests for that long: requests/s, p50/p95 latency,
errors, and whether every request got its answer.

Example:
    python tools/bench_inference.py --run runs/sentiment-minilm            # ~10 min on 2 cores
    python tools/bench_inference.py --run runs/sentiment-minilm --serve-seconds 60 --clients 8
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a finished text-classification run directory")
    parser.add_argument("--out", default="/tmp/tfft_bench_inference", help="where the ONNX and HF copies go")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=50, help="batch-1 calls per system per round")
    parser.add_argument("--seconds", type=float, default=8.0, help="batch-32 time per system per round")
    parser.add_argument("--keras-int8", action="store_true", help="also a SavedModel of Keras' int8 quantization")
    parser.add_argument("--serve-seconds", type=float, default=0, help="load-test tfft serve this long (0: skip)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def set_threads(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def fixed_length_batches(tokenizer, texts, length):
    """The texts tokenized, truncated and padded to exactly `length` tokens (int32 numpy)."""
    batch = tokenizer(texts, max_length=length)
    pad = length - batch["input_ids"].shape[1]
    out = {k: np.pad(v, ((0, 0), (0, pad)), constant_values=tokenizer.pad_token_id if k == "input_ids" else 0)
           for k, v in batch.items()}
    return out


def size_mb(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


# --- the systems: name -> callable(ids dict) -> logits numpy -----------------------------------------

def tfft_saved_model(path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures["serve_ids"]

    def run(batch):
        return function(**{k: tf.constant(v) for k, v in batch.items()})["logits"].numpy()

    return run


def onnx_session(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    output = [o.name for o in session.get_outputs()].index("logits") if any(
        o.name == "logits" for o in session.get_outputs()) else 0

    def run(batch):
        return session.run(None, {k: batch[k].astype(np.int64 if "int64" in i.type else np.int32)
                                  for k, i in zip(names, session.get_inputs())})[output]

    return run


def torch_eager(hf_dir, threads):
    import torch
    import transformers

    torch.set_num_threads(threads)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(hf_dir)).eval()

    def run(batch):
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in batch.items()}).logits.numpy()

    return run, model


def torch_onnx_export(model, path, length):
    import torch

    example = tuple(torch.ones((2, length), dtype=torch.int64) for _ in range(3))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    try:
        torch.onnx.export(model, example, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
        return "torch.onnx.export (TorchScript exporter), opset 17"
    except Exception as e:  # the TorchScript exporter may be gone in a later torch
        print(f"  TorchScript exporter failed ({e}); trying dynamo=True", flush=True)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
        torch.onnx.export(model, example, str(path), input_names=names, output_names=["logits"],
                          dynamic_shapes={n: {0: batch, 1: seq} for n in names}, opset_version=17, dynamo=True)
        return "torch.onnx.export (dynamo), opset 17"


# --- measurement ---------------------------------------------------------------------------------------

def time_latency(run, rows, calls):
    """Batch-1 call times over the sentences in turn, each at its own length (a single request
    is not padded)."""
    times = []
    for i in range(calls):
        length = int(rows["attention_mask"][i % len(rows["input_ids"])].sum())
        one = {k: v[i % len(v)][None, :length] for k, v in rows.items()}
        start = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - start)
    return times


def time_throughput(run, rows, seconds, batch_size=32):
    n = len(rows["input_ids"])
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds or done == 0:
        index = np.arange(i, i + batch_size) % n
        run({k: v[index] for k, v in rows.items()})
        done += batch_size
        i += batch_size
    return done / (time.perf_counter() - start)


def accuracy(run, rows, labels, batch_size=64):
    predictions = []
    for start in range(0, len(labels), batch_size):
        predictions.append(run({k: v[start : start + batch_size] for k, v in rows.items()}).argmax(-1))
    return float(np.mean(np.concatenate(predictions) == labels))


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


# --- tfft serve under load -------------------------------------------------------------------------------

def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_test_serve(export_dir, texts, expected_labels, seconds, clients, threads, log_path):
    import requests

    port = free_port()
    command = [sys.executable, "-m", "tfft.cli", "serve", str(export_dir), "--name", "bench", "--http-port",
               str(port), "--intra-op-threads", str(threads)]
    log = open(log_path, "w")  # a file, not a pipe: the server logs every request, and a full pipe blocks it
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1/models/bench"
    try:
        deadline = time.time() + 300
        while True:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still loading the model
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"tfft serve did not start:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        latencies, errors, wrong, sent = [], [], [0], [0]
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def client(k):
            session = requests.Session()
            i = k
            while time.perf_counter() < stop:
                text = texts[i % len(texts)]
                start = time.perf_counter()
                with lock:
                    sent[0] += 1
                try:
                    reply = session.post(url + ":predict", json={"instances": [text]}, timeout=60)
                    elapsed = time.perf_counter() - start
                    if reply.status_code != 200:
                        with lock:
                            errors.append(f"{reply.status_code} {reply.text[:200]}")
                        continue
                    label = reply.json()["predictions"][0]["labels"]
                    with lock:
                        latencies.append(elapsed)
                        wrong[0] += label != expected_labels[i % len(texts)]
                except requests.RequestException as e:
                    with lock:
                        errors.append(repr(e)[:200])
                i += clients

        workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        begin = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - begin
        return {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies), "sent": sent[0],
                "requests_per_s": len(latencies) / wall, "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95), "errors": len(errors), "error_samples": errors[:3],
                "wrong_labels": wrong[0]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main():
    args = parse_args()
    set_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    import tensorflow as tf

    from tfft.export import export_onnx
    from tfft.export.quantize import int8_settings
    from tfft.run import load_run_model, load_run_task

    run_dir = Path(args.run).resolve()
    task = load_run_task(run_dir)
    model = load_run_model(run_dir, task)
    test_path = Path(task.config.data.test)
    if not test_path.is_absolute() and not test_path.exists():
        test_path = ROOT / test_path  # the configs name data relative to the repository
    test = task.read_split(test_path, "test")
    texts = list(test.texts)
    labels = np.asarray([list(map(str, model.labels)).index(str(label)) for label in test.labels])
    rows = fixed_length_batches(model.tokenizer, texts, args.length)
    print(f"{len(texts)} test sentences of {test_path}, padded to {args.length} tokens; "
          f"{args.threads} threads", flush=True)

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    exports = sorted((run_dir / "export").glob("[0-9]*"), key=lambda p: int(p.name))
    saved_model = exports[-1]
    systems, sizes, notes = {}, {}, {}
    systems["tfft SavedModel fp32"] = tfft_saved_model(saved_model)
    sizes["tfft SavedModel fp32"] = size_mb(saved_model)

    if args.keras_int8:
        from tfft.export import export_saved_model
        from tfft.export.quantize import quantize_model_int8
        from tfft.run import load_run_model as reload

        quantized = quantize_model_int8(reload(run_dir, task))
        path = export_saved_model(quantized, out / "keras_int8", max_length=args.length)
        systems["tfft SavedModel Keras int8"] = tfft_saved_model(path)
        sizes["tfft SavedModel Keras int8"] = size_mb(path)

    print("exporting ONNX (tf2onnx, checked against TensorFlow) ...", flush=True)
    start = time.perf_counter()
    onnx = export_onnx(model, out / "onnx", max_length=args.length, quantize=True, task=task.name)
    notes["onnx"] = {"seconds": round(time.perf_counter() - start, 1), "max_abs_diff": onnx.max_abs_diff,
                     "int8": int8_settings()}
    systems["tfft ONNX fp32 (onnxruntime)"] = onnx_session(onnx.model_path, args.threads)
    systems["tfft ONNX int8 (onnxruntime)"] = onnx_session(onnx.int8_path, args.threads)
    sizes["tfft ONNX fp32 (onnxruntime)"] = size_mb(onnx.model_path)
    sizes["tfft ONNX int8 (onnxruntime)"] = size_mb(onnx.int8_path)

    print("transformers + PyTorch: save_pretrained, load, export ONNX ...", flush=True)
    model.save_pretrained(out / "hf")
    systems["PyTorch eager (transformers)"], hf_model = torch_eager(out / "hf", args.threads)
    sizes["PyTorch eager (transformers)"] = size_mb(out / "hf" / "model.safetensors")
    notes["torch_onnx"] = torch_onnx_export(hf_model, out / "torch.onnx", args.length)
    systems["ONNX of PyTorch (onnxruntime)"] = onnx_session(out / "torch.onnx", args.threads)
    sizes["ONNX of PyTorch (onnxruntime)"] = size_mb(out / "torch.onnx")

    print("accuracy on the test set ...", flush=True)
    reference = systems["tfft SavedModel fp32"](  # every system's logits against tfft's, first 64 rows
        {k: v[:64] for k, v in rows.items()})
    results = {}
    for name, run in systems.items():
        results[name] = {"accuracy": accuracy(run, rows, labels),
                         "max_abs_logit_diff_vs_tfft": float(np.abs(run({k: v[:64] for k, v in rows.items()})
                                                                   - reference).max()),
                         "size_mb": sizes[name], "latency": [], "throughput": []}
        print(f"  {name}: accuracy {results[name]['accuracy']:.4f}", flush=True)

    for round_ in range(args.rounds):
        for name, run in systems.items():
            run({k: v[:32] for k, v in rows.items()})  # warm
            results[name]["latency"] += time_latency(run, rows, args.latency_calls)
            results[name]["throughput"].append(time_throughput(run, rows, args.seconds))
        print(f"  round {round_ + 1}/{args.rounds}: " + ", ".join(
            f"{n.split(' (')[0]} {r['throughput'][-1]:.1f}/s" for n, r in results.items()), flush=True)

    table = ["| system | batch 1 p50 ms | batch 1 p95 ms | batch 32 examples/s | test accuracy | size MB |",
             "|---|---:|---:|---:|---:|---:|"]
    summary = {}
    for name, r in results.items():
        summary[name] = {"p50_ms": percentile(r["latency"], 50), "p95_ms": percentile(r["latency"], 95),
                         "examples_per_s": statistics.median(r["throughput"]), "accuracy": r["accuracy"],
                         "size_mb": r["size_mb"], "max_abs_logit_diff_vs_tfft": r["max_abs_logit_diff_vs_tfft"]}
        s = summary[name]
        table.append(f"| {name} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['examples_per_s']:.1f} | "
                     f"{100 * s['accuracy']:.2f} | {s['size_mb']:.0f} |")
    print("\n" + "\n".join(table))
    report = {"systems": summary, "notes": notes, "threads": args.threads, "length": args.length,
              "test_sentences": len(texts), "tensorflow": tf.__version__}

    if args.serve_seconds:
        print(f"\ntfft serve: {args.clients} clients for {args.serve_seconds:.0f} s ...", flush=True)
        predicted = [model.labels[i] for i in np.concatenate(
            [systems["tfft SavedModel fp32"]({k: v[s : s + 64] for k, v in rows.items()}).argmax(-1)
             for s in range(0, len(texts), 64)])]
        # The server truncates at the export's max length; the expected labels come from the same
        # SavedModel on the same texts, so a wrong label means a wrong answer, not a length effect.
        expected = [r["label"] for r in model.predict_texts(texts, max_length=args.length)] if hasattr(
            model, "predict_texts") else predicted
        serve = load_test_serve(saved_model.parent, texts, expected, args.serve_seconds, args.clients, args.threads,
                                out / "serve.log")
        report["serve"] = serve
        print(f"| tfft serve | {serve['clients']} clients | {serve['requests_per_s']:.1f} requests/s | "
              f"p50 {serve['p50_ms']:.1f} ms | p95 {serve['p95_ms']:.1f} ms | errors {serve['errors']} | "
              f"answered {serve['requests']}/{serve['sent']} | wrong labels {serve['wrong_labels']} |")
    print("\n" + json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
