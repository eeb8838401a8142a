"""TF_CONFIG and the cluster flags: what a worker reads, and one clear error for each mistake."""

import json
import os

import pytest

from tfft.distribute import create_strategy, read_cluster, tf_config
from tfft.distribute.cluster import free_ports
from tfft.errors import ConfigError


def cluster(value):
    return read_cluster({"TF_CONFIG": value if isinstance(value, str) else json.dumps(value)})


def test_workers_chief_first():
    c = cluster({"cluster": {"worker": ["h1:1", "h2:2"], "chief": ["h0:3"]}, "task": {"type": "worker", "index": 1}})
    assert c.addresses == ("h0:3", "h1:1", "h2:2") and c.index == 2 and not c.is_chief and c.address == "h2:2"
    c = cluster({"cluster": {"worker": ["h1:1", "h2:2"]}, "task": {"type": "worker", "index": 0}})
    assert c.is_chief and c.num_workers == 2 and c.peers() == ["h2:2"]
    assert read_cluster({}) is None


def test_flags_build_the_same_tf_config():
    c = cluster(tf_config(["10.0.0.1:2222", "10.0.0.2:2222"], 1))
    assert c.addresses == ("10.0.0.1:2222", "10.0.0.2:2222") and c.index == 1


@pytest.mark.parametrize("value, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ({"task": {"type": "worker", "index": 0}}, 'TF_CONFIG: no "cluster" object'),
    ({"cluster": {"worker": ["h1"]}, "task": {"type": "worker", "index": 0}},
     "TF_CONFIG cluster.worker[0]: 'h1' is not HOST:PORT"),
    ({"cluster": {"worker": ["h1:99999"]}, "task": {"type": "worker", "index": 0}}, "'h1:99999' is not HOST:PORT"),
    ({"cluster": {"worker": ["h1:1"]}}, 'TF_CONFIG: no "task"'),
    ({"cluster": {"worker": ["h1:1"]}, "task": {"type": "worker", "index": 1}},
     "TF_CONFIG: task.index 1 is outside cluster.worker (0..0)"),
    ({"cluster": {"worker": ["h1:1"]}, "task": {"type": "chief", "index": 0}},
     "TF_CONFIG: task.type 'chief' is not a job of the cluster (worker)"),
    ({"cluster": {"worker": ["h1:1"], "ps": ["h2:2"]}, "task": {"type": "ps", "index": 0}},
     "tfft trains on chief and worker tasks only"),
    ({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}, "cluster.worker must be a non-empty list"),
])
def test_bad_tf_config_is_one_clear_error(value, message):
    with pytest.raises(ConfigError, match=None) as error:
        cluster(value)
    assert message in str(error.value)


def test_bad_flags():
    with pytest.raises(ConfigError, match="--worker-index 2 is outside the cluster of 2 workers"):
        tf_config(["h:1", "h:2"], 2)
    with pytest.raises(ConfigError, match="--cluster: 'h' is not HOST:PORT"):
        tf_config(["h", "h:2"], 0)


def test_a_cluster_without_the_multi_worker_strategy_is_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config(["127.0.0.1:1", "127.0.0.1:2"], 0))
    with pytest.raises(ConfigError, match="TF_CONFIG names a cluster of 2 workers but training.distribute is None"):
        create_strategy(None)
    with pytest.raises(ConfigError, match="unknown strategy 'mirored'"):
        create_strategy("mirored")


def test_cli_cluster_errors(tmp_path, capsys):
    from tfft.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("run_dir: x\nmodel:\n  checkpoint: x\ndata:\n  train: x\n")
    for args, message in [
        (["--cluster", "127.0.0.1:1"], "--cluster and --worker-index go together"),
        (["--cluster", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "5"], "--worker-index 5 is outside the cluster"),
        (["--local-workers", "2", "--worker-index", "0"], "--local-workers starts its own cluster"),
        (["--local-workers", "0"], "--local-workers must be at least 1"),
    ]:
        assert main(["train", str(config), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("tfft: error:") == 1 and message in err, (args, err)
    assert "TF_CONFIG" not in os.environ  # nothing set by a refused command


def test_free_ports_are_distinct():
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)


def test_a_taken_port_of_this_worker_fails_at_once_naming_it(monkeypatch):
    import socket

    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other, = free_ports(1)
        monkeypatch.setenv("TF_CONFIG", tf_config([f"127.0.0.1:{port}", f"127.0.0.1:{other}"], 0))
        with pytest.raises(ConfigError, match=f"worker 0 cannot listen on port {port} of its address 127.0.0.1:{port}"):
            create_strategy("multi_worker_mirrored", cluster_timeout=5)
