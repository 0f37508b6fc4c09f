"""Run a command and report its wall time, the CPU time of its whole tree, its own peak resident memory and
the largest peak of any process of its tree, as one JSON line on stderr; the command's output, stderr
included, goes to stdout (used by bench_cache.py to time `snakemake figures`).

The kernel keeps each process's peak RSS and, when a child is reaped, the largest of its descendants'
(``wait4``'s ``ru_maxrss``), so a job's exact peak is known even if it lasts a fraction of a second. A child
starts out with its parent's peak (fork copies the memory map, and exec records the old map's peak), so this
launcher is kept small: run from a script that holds torch and large arrays, the command would inherit them.

    python benchmarks/peak_memory.py COMMAND [ARG ...]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path


def own_peak_mb(pid: int, stop: threading.Event, found: list[float]) -> None:
    """Keep ``found[0]`` at the peak RSS (VmHWM, which only grows) of process ``pid`` until ``stop`` or its end."""
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        try:
            match = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.M)
        except OSError:
            return
        if match:
            found[0] = max(found[0], int(match.group(1)) / 1024)
        stop.wait(0.2)


def main() -> int:
    command = sys.argv[1:]
    if not command:
        sys.exit(__doc__)
    start = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.STDOUT)  # the command's output all on stdout
    stop, found = threading.Event(), [0.0]
    watcher = threading.Thread(target=own_peak_mb, args=(child.pid, stop, found), daemon=True)
    watcher.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    print(json.dumps({"wall_s": wall, "exit": os.waitstatus_to_exitcode(status),
                      "tree_peak_mb": usage.ru_maxrss / 1024,  # kB on Linux
                      "tree_cpu_s": usage.ru_utime + usage.ru_stime,  # the command's and every reaped descendant's
                      "own_peak_mb": found[0]}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
