"""Ends a worker that cannot form its cluster in time, with one message naming the addresses.

TensorFlow waits for every worker of a `MultiWorkerMirroredStrategy` without a bound, inside
C++ that holds the GIL (no Python thread or signal handler of the worker runs) and with SIGTERM
swallowed. So the bound is kept by a small child process, which imports no TensorFlow:

    python -m tfft.distribute.watchdog PARENT_PID TIMEOUT FD TF_CONFIG_INDEX ADDRESS ...

It waits on the read end `FD` of a pipe whose write end the worker closes once the cluster has
formed (or that closes when the worker dies); if `TIMEOUT` seconds pass first, it probes the
other addresses, prints which did not answer and kills the worker (exit status 137).
"""

import os
import select
import signal
import sys

from tfft.distribute.cluster import reachable


def message(index, addresses, timeout):
    silent = [f"{address} (worker {i})" for i, address in enumerate(addresses) if i != index and not reachable(address)]
    if silent:
        problem = f"no answer from {', '.join(silent)}"
    else:
        problem = "every address answers, but not every worker joined (is each started with the same cluster?)"
    return (f"tfft: error: worker {index} ({addresses[index]}) could not form the cluster of {len(addresses)} "
            f"workers within {timeout:g} s: {problem}. Check the addresses in TF_CONFIG (or --cluster) and that "
            "every worker was started; training.cluster_timeout sets the wait.")


def main(argv):
    parent, timeout, fd, index, *addresses = argv
    ready, _, _ = select.select([int(fd)], [], [], float(timeout))
    if ready:  # the worker closed the pipe: the cluster formed, or the worker ended
        return 0
    print(message(int(index), addresses, float(timeout)), file=sys.stderr, flush=True)
    try:
        os.kill(int(parent), signal.SIGKILL)
    except ProcessLookupError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
