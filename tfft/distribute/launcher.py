"""`launch_local_workers`: N worker processes of one multi-worker run on this machine.

Each worker gets a free port on 127.0.0.1 and its own TF_CONFIG; the chief's (worker 0's)
output streams to this process's stdout and stderr, the others' go to
`<log_dir>/worker-<i>.log`. When the chief ends, or any worker fails, the others are stopped;
SIGINT or SIGTERM here is passed to every worker (a worker saves a backup and exits, see
`BackupAndResume`). This is how TensorFlow's own multi-worker tests run, and how to try a
TFJob's config before submitting it.

    tfft train CONFIG --local-workers 2
    launch_local_workers([sys.executable, "-m", "tfft.cli", "train", "run.yaml"], 3)
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tfft.distribute.cluster import TF_CONFIG, free_ports, tf_config

_GRACE = 20.0  # seconds the others get to finish after the chief ended, or to stop after SIGTERM


def _tail(path, lines=15):
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


def _stop(processes, grace):
    """SIGTERM to the running ones, then SIGKILL to those still running after `grace` s
    (TensorFlow's coordination service swallows SIGTERM before training starts)."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch_local_workers(command, num_workers, *, env=None, log_dir=None, host="127.0.0.1", grace=_GRACE,
                         worker_env=None):
    """Runs `command` as `num_workers` workers of one cluster; returns the job's exit code.

    The code is the chief's when it failed, else the first failed worker's, else 0.
    `worker_env(i)` may add variables for worker i (the benchmark pins threads this way).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    ports = free_ports(num_workers, host)
    addresses = [f"{host}:{port}" for port in ports]
    keep_logs = log_dir is not None
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="tfft-workers-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    base_env = dict(os.environ if env is None else env)
    processes, logs = [], []
    print(f"tfft: {num_workers} workers on {', '.join(addresses)}; worker logs in {log_dir}", file=sys.stderr,
          flush=True)
    for i in range(num_workers):
        worker = {**base_env, TF_CONFIG: tf_config(addresses, i), **(worker_env(i) if worker_env else {})}
        if i == 0:
            out = None  # the chief streams
        else:
            out = open(log_dir / f"worker-{i}.log", "wb")
            logs.append(out)
        processes.append(subprocess.Popen(command, env=worker, stdout=out, stderr=subprocess.STDOUT if out else None))

    interrupted = []

    def forward(signum, frame):
        interrupted.append(signum)
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed = None
        while True:
            codes = [p.poll() for p in processes]
            if codes[0] is not None:
                break
            failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None:
                print(f"tfft: worker {failed} exited with code {codes[failed]}; stopping the others. "
                      f"Its log ({log_dir / f'worker-{failed}.log'}) ends:\n{_tail(log_dir / f'worker-{failed}.log')}",
                      file=sys.stderr, flush=True)
                try:  # the chief notices the lost worker and says where its backup is
                    processes[0].wait(grace * 2)
                except subprocess.TimeoutExpired:
                    pass
                break
            time.sleep(0.2)
        if processes[0].poll() == 0 and failed is None:
            deadline = time.monotonic() + grace  # the others end with the chief's last step
            while time.monotonic() < deadline and any(p.poll() is None for p in processes):
                time.sleep(0.2)
        _stop(processes, grace if interrupted else 2.0)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for f in logs:
            f.close()
    codes = [128 - c if c < 0 else c for c in (p.returncode for p in processes)]  # killed by signal N: 128 + N
    code = codes[0] or (codes[failed] if failed is not None else 0)
    if code == 0 and not keep_logs:
        for i in range(1, num_workers):
            (log_dir / f"worker-{i}.log").unlink(missing_ok=True)
        try:
            log_dir.rmdir()
        except OSError:
            pass
    elif code:
        print(f"tfft: worker logs kept in {log_dir}", file=sys.stderr, flush=True)
    return code
