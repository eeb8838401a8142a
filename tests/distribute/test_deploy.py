"""deploy/: the Kubeflow TFJob and the Vertex AI custom job run a valid `tfft train`.

Neither can be submitted from here (no cluster, no cloud): these check what can go wrong in the
files themselves. The command each container runs parses with tfft's own CLI, its config loads
with the overrides applied, and the run is a multi-worker one on storage outside the image.
"""

from pathlib import Path

import yaml

from tfft.cli import build_parser
from tfft.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tfft_run(argv):
    """The RunConfig a container's `tfft ...` argv would train, through tfft's parser."""
    assert argv[0] == "tfft"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "train"
    return load_config(ROOT / args.config, args.set)


def tfjob():
    return yaml.safe_load((DEPLOY / "kubeflow" / "tfjob.yaml").read_text())


def vertex_job():
    return yaml.safe_load((DEPLOY / "vertex" / "custom_job.yaml").read_text())


def test_the_tfjob_runs_tfft_train_on_every_worker_with_a_shared_run_dir():
    job = tfjob()
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    (replica_type, spec), = job["spec"]["tfReplicaSpecs"].items()
    assert replica_type == "Worker" and spec["replicas"] >= 2  # worker 0 is the chief
    assert spec["restartPolicy"] == "ExitCode"  # retries 128+ (a lost worker), not 2 (a config error)
    pod = spec["template"]["spec"]
    container, = pod["containers"]
    assert container["name"] == "tensorflow"  # the operator finds the container (and its port) by name
    config = tfft_run(container["command"] + container.get("args", []))
    assert config.training.distribute == "multi_worker_mirrored"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    run_volume = next(name for path, name in mounts.items() if config.run_dir.startswith(path + "/"))
    assert any(v["name"] == run_volume and "persistentVolumeClaim" in v for v in pod["volumes"])


def test_the_vertex_job_runs_the_same_training_as_the_tfjob():
    job = vertex_job()
    chief, workers = job["workerPoolSpecs"]
    assert chief["replicaCount"] == 1
    assert chief["replicaCount"] + workers["replicaCount"] == tfjob()["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
    assert chief["containerSpec"] == workers["containerSpec"]
    container = chief["containerSpec"]
    config = tfft_run(container["command"] + container.get("args", []))
    assert config.run_dir.startswith("/gcs/")  # Cloud Storage, mounted on every replica
    tfjob_container = tfjob()["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    same = tfft_run(tfjob_container["command"])
    assert {**config.to_dict(), "run_dir": None} == {**same.to_dict(), "run_dir": None}
    assert job["scheduling"]["restartJobOnWorkerRestart"] is True  # a lost worker restarts all; they resume

