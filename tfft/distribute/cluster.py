"""The cluster a worker belongs to: `TF_CONFIG`, read and checked, or built from flags.

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                "task": {"type": "worker", "index": 1}}'

is what Kubeflow's TFJob, Vertex AI and `tfft train --local-workers` set for each process;
`tfft train --cluster HOST:PORT,HOST:PORT --worker-index I` builds the same. The chief is the
`chief` task when the cluster has one, else worker 0 (TensorFlow's rule).
"""

import dataclasses
import json
import os
import socket

from tfft.errors import ConfigError

TF_CONFIG = "TF_CONFIG"
_JOBS = ("chief", "worker")  # the jobs that train; an "evaluator" or "ps" task does not


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The training tasks of a cluster, chief first, and which of them this process is."""

    addresses: tuple[str, ...]  # host:port of each training task, chief first
    index: int  # this process's position in `addresses`
    task: tuple[str, int]  # this process's (job, index) in TF_CONFIG

    @property
    def num_workers(self):
        return len(self.addresses)

    @property
    def is_chief(self):
        return self.index == 0

    @property
    def address(self):
        return self.addresses[self.index]

    def peers(self):
        return [a for i, a in enumerate(self.addresses) if i != self.index]


def parse_address(address, where):
    """(host, port) of "host:port"; a `ConfigError` naming `where` otherwise."""
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {address!r} is not HOST:PORT (e.g. 10.0.0.1:2222)")
    return host.strip("[]"), int(port)


def tf_config(addresses, index):
    """The TF_CONFIG JSON for worker `index` of a cluster of `addresses` (worker 0 the chief)."""
    addresses = list(addresses)
    if not 0 <= index < len(addresses):
        raise ConfigError(f"--worker-index {index} is outside the cluster of {len(addresses)} workers "
                          f"(0..{len(addresses) - 1})")
    for address in addresses:
        parse_address(address, "--cluster")
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def read_cluster(environ=None):
    """The `Cluster` that TF_CONFIG describes, or None without TF_CONFIG.

    Every mistake (bad JSON, no task, an index outside its job, an address without a port)
    is one `ConfigError` naming TF_CONFIG and the field.
    """
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ConfigError(f'{TF_CONFIG}: no "cluster" object (e.g. {{"cluster": {{"worker": ["host:port", ...]}}, '
                          '"task": {"type": "worker", "index": 0}})')
    jobs = config["cluster"]
    for job, addresses in jobs.items():
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f'{TF_CONFIG}: cluster.{job} must be a non-empty list of "host:port"')
        for i, address in enumerate(addresses):
            parse_address(address, f"{TF_CONFIG} cluster.{job}[{i}]")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError(f'{TF_CONFIG}: no "task" with "type" and "index" (which task this process is)')
    job, index = task["type"], task["index"]
    if job not in jobs:
        raise ConfigError(f"{TF_CONFIG}: task.type {job!r} is not a job of the cluster ({', '.join(jobs)})")
    if not isinstance(index, int) or not 0 <= index < len(jobs[job]):
        raise ConfigError(f"{TF_CONFIG}: task.index {index!r} is outside cluster.{job} (0..{len(jobs[job]) - 1})")
    if job not in _JOBS:
        raise ConfigError(f"{TF_CONFIG}: task.type {job!r}: tfft trains on chief and worker tasks only")
    if len(jobs.get("chief", ())) > 1:
        raise ConfigError(f"{TF_CONFIG}: cluster.chief may hold one task, not {len(jobs['chief'])}")
    order = [(name, i) for name in _JOBS for i in range(len(jobs.get(name, ())))]
    return Cluster(addresses=tuple(jobs[name][i] for name, i in order), index=order.index((job, index)),
                   task=(job, index))


def reachable(address, timeout=1.0):
    """Whether a TCP connection to "host:port" opens within `timeout` seconds."""
    host, port = parse_address(address, "address")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_own_port(cluster):
    """A clear error when this worker's port is taken or its host is not this machine."""
    host, port = parse_address(cluster.address, TF_CONFIG)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError as e:
            raise ConfigError(f"worker {cluster.index} cannot listen on port {port} of its address {cluster.address} "
                              f"({e.strerror}): is another process using it?") from None


def free_ports(count, host="127.0.0.1"):
    """`count` TCP ports that are free on `host` now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
