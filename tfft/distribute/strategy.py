"""The `tf.distribute` strategy of a run, and what a worker of a multi-worker run may do.

`create_strategy("multi_worker_mirrored", cluster_timeout=300)` reads TF_CONFIG, checks it,
waits at most `cluster_timeout` seconds for every worker to join (then a watchdog ends the
worker naming the addresses that did not answer, see `watchdog`), and returns
`MultiWorkerMirroredStrategy` with Keras's `fit` fixed for it (`keras_fixes`).
`worker_role(strategy)` says whether this process is the chief, the one that writes the run's
shared files.
"""

import contextlib
import dataclasses
import os
import subprocess
import sys
import weakref

import tensorflow as tf

from tfft.distribute import keras_fixes
from tfft.distribute.cluster import check_own_port, read_cluster
from tfft.distribute.keras_fixes import in_multi_worker_mode
from tfft.errors import ConfigError

STRATEGIES = (None, "mirrored", "multi_worker_mirrored")


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in the run: worker `index` of `num_workers`; the chief writes."""

    index: int = 0
    num_workers: int = 1

    @property
    def is_chief(self):
        return self.index == 0

    @property
    def multi_worker(self):
        return self.num_workers > 1


def worker_role(strategy):
    if not in_multi_worker_mode(strategy):
        return WorkerRole()
    extended = strategy.extended
    return WorkerRole(index=extended._id_in_cluster, num_workers=extended._num_workers)


@contextlib.contextmanager
def _bounded_wait(cluster, timeout):
    """Inside the block, a watchdog process ends this worker if the block outlasts `timeout` s."""
    read, write = os.pipe()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "tfft.distribute.watchdog", str(os.getpid()), str(timeout), str(read),
         str(cluster.index), *cluster.addresses], pass_fds=(read,))
    os.close(read)
    try:
        yield
    finally:
        os.close(write)  # the watchdog sees end-of-file and exits
        watchdog.wait()


def create_strategy(name, cluster_timeout=300.0):
    """The strategy `training.distribute` names (None: the default, one device)."""
    if name not in STRATEGIES:
        raise ConfigError(f"training.distribute: unknown strategy {name!r}; expected one of {STRATEGIES}")
    cluster = read_cluster()
    if cluster is not None and cluster.num_workers > 1 and name != "multi_worker_mirrored":
        raise ConfigError(f"TF_CONFIG names a cluster of {cluster.num_workers} workers but training.distribute is "
                          f"{name!r}: set training.distribute: multi_worker_mirrored (or unset TF_CONFIG), or every "
                          "worker would train alone and write the same run directory")
    if name is None:
        return tf.distribute.get_strategy()
    keras_fixes.apply()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if cluster is None or cluster.num_workers == 1:
        return tf.distribute.MultiWorkerMirroredStrategy()  # one worker: TF runs it locally
    check_own_port(cluster)
    with _bounded_wait(cluster, cluster_timeout):
        return tf.distribute.MultiWorkerMirroredStrategy()


_local_predict_functions = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def local_inference(model):
    """`model.predict` on this worker alone, without collectives, inside the block.

    Under a multi-worker strategy Keras shards `predict`'s input over the workers and gathers
    the results, which needs every worker to predict the same data at the same time. Dev
    evaluation and the chief's final evaluation run on one worker's full data instead: the
    weights are the same on every worker, so every worker computes the same metrics.
    """
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or not in_multi_worker_mode(strategy):
        yield model
        return
    distributed = model.predict_function
    model._distribute_strategy = None  # Keras falls back to the default strategy
    model.predict_function = _local_predict_functions.get(model)
    try:
        yield model
    finally:
        _local_predict_functions[model] = model.predict_function
        model.predict_function = distributed
        model._distribute_strategy = strategy


def wait_for_all_workers(strategy):
    """Returns when every worker of the run has called it: a barrier (one all-reduce).

    The other workers wait here, after `fit`, for the chief to evaluate and export, so that no
    worker leaves the cluster while another still runs (TensorFlow's coordination service
    would report it as crashed). Without a multi-worker strategy it returns at once.
    """
    if in_multi_worker_mode(strategy):
        strategy.reduce("SUM", tf.constant(1.0), axis=None)


def worker_lost_errors():
    """The errors `fit` raises when a peer of a multi-worker run stops or cannot be reached."""
    return (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.InternalError)
