"""`tfft serve`'s command line and export lookup, without kserve or a model."""

import argparse
import json
import subprocess
import sys

import pytest

from tfft.errors import TfftError
from tfft.serve.backend import Backend, default_model_name, find_export
from tfft.serve.cli import add_parser


def parse(*argv):
    parser = argparse.ArgumentParser(prog="tfft")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def run(*argv):
    args = parse(*argv)
    return args.run(args)


def test_defaults_and_options():
    args = parse("runs/x")
    assert (args.host, args.http_port, args.token, args.max_body_bytes, args.max_batch_size, args.max_text_chars,
            args.timeout, args.warmup) == ("127.0.0.1", 8080, None, 1 << 20, 64, 4000, 30.0, True)
    args = parse("runs/x", "--http-port", "0", "--max-batch-size", "8", "--timeout", "2.5", "--no-warmup")
    assert (args.http_port, args.max_batch_size, args.timeout, args.warmup) == (0, 8, 2.5, False)
    with pytest.raises(SystemExit):
        parse("runs/x", "--max-batch-size", "0")


def test_adding_the_command_imports_neither_kserve_nor_tensorflow():
    code = ("import argparse, json, sys; from tfft.serve.cli import add_parser; "
            "add_parser(argparse.ArgumentParser().add_subparsers()); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'kserve', 'tensorflow', 'fastapi'})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == []


def test_without_kserve_it_names_the_extra(tmp_path):
    # tests/conftest.py hides kserve from this process, as on a machine without the serve extra
    with pytest.raises(TfftError, match=r"pip install -e '\.\[serve\]'"):
        run(str(tmp_path))


def test_bad_arguments_are_tfft_errors(tmp_path):
    with pytest.raises(TfftError, match="not a port"):
        run(str(tmp_path), "--http-port", "70000")
    with pytest.raises(TfftError, match="--name"):
        run(str(tmp_path), "--name", "a/b")


def _version(directory):
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"")
    return directory


def test_find_export_resolves_versions_export_and_run_directories(tmp_path):
    run = tmp_path / "runs" / "sentiment"
    for version in ("1", "2", "10"):
        _version(run / "export" / version)
    (run / "export" / "11").mkdir()  # an unfinished version, without saved_model.pb
    (run / "export" / ".tmp-12").mkdir()
    assert find_export(run / "export" / "2") == run / "export" / "2"
    assert find_export(run / "export") == run / "export" / "10"  # numerically highest, as TF Serving
    assert find_export(run) == run / "export" / "10"
    with pytest.raises(TfftError, match="no such directory"):
        find_export(tmp_path / "missing")
    with pytest.raises(TfftError, match="holds no model to serve"):
        find_export(run / "export" / "11")
    with pytest.raises(TfftError, match="holds no ONNX export"):
        find_export(run, onnx=True)

    (run / "onnx").mkdir()
    (run / "onnx" / "model.onnx").write_bytes(b"")  # tfft export --format onnx
    assert find_export(run) == run / "export" / "10"  # the SavedModel first
    assert find_export(run, onnx=True) == find_export(run / "onnx") == run / "onnx"
    onnx_only = tmp_path / "runs" / "onnx_only"
    onnx_only.mkdir()
    (run / "onnx").rename(onnx_only / "onnx")
    assert find_export(onnx_only) == onnx_only / "onnx"  # a run exported to ONNX only


def test_default_model_name(tmp_path):
    backend = Backend()
    backend.path, backend.metadata = tmp_path / "runs" / "sentiment" / "export" / "3", {}
    assert default_model_name(backend) == "sentiment"  # the run's name, not "export"
    backend.path = tmp_path / "models" / "reviews" / "1"
    assert default_model_name(backend) == "reviews"
    backend.metadata = {"model_name": "movies"}
    assert default_model_name(backend) == "movies"
