"""Training beyond one device: strategies, multi-worker clusters, and a local launcher.

    tfft train CONFIG --local-workers 2                            # N workers on this machine
    tfft train CONFIG --cluster h1:2222,h2:2222 --worker-index 0   # one worker of a cluster
    TF_CONFIG='{...}' tfft train CONFIG                            # as TFJob / Vertex AI start it

Names are imported on first use: the launcher and the cluster watchdog run without TensorFlow.
"""

from tfft._lazy import lazy_getattr

_EXPORTS = {
    "Cluster": "tfft.distribute.cluster",
    "free_ports": "tfft.distribute.cluster",
    "read_cluster": "tfft.distribute.cluster",
    "tf_config": "tfft.distribute.cluster",
    "launch_local_workers": "tfft.distribute.launcher",
    "WorkerRole": "tfft.distribute.strategy",
    "create_strategy": "tfft.distribute.strategy",
    "local_inference": "tfft.distribute.strategy",
    "wait_for_all_workers": "tfft.distribute.strategy",
    "worker_lost_errors": "tfft.distribute.strategy",
    "worker_role": "tfft.distribute.strategy",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("tfft.distribute", _EXPORTS)
