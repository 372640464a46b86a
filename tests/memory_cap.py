"""Run ``python -m sweep`` with a per-process memory cap, enforced as the kernel's
out-of-memory killer would: any child process whose resident memory exceeds the cap
is killed with SIGKILL. For the fault tests (a dead worker is a failed cell).

    python tests/memory_cap.py CAP_MB [sweep arguments ...]
"""

import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.02


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def enforce(cap_bytes: int) -> None:
    """Kill (SIGKILL) every child of this process that grows past ``cap_bytes``."""
    me = os.getpid()
    while True:
        for pid in children(me):
            if rss_bytes(pid) > cap_bytes:
                os.kill(pid, signal.SIGKILL)
                sys.stderr.write(f"memory_cap: killed {pid} (over the cap)\n")
        time.sleep(POLL_S)


if __name__ == "__main__":
    cap = int(float(sys.argv[1]) * 2**20)
    threading.Thread(target=enforce, args=(cap,), daemon=True).start()
    sys.argv = ["sweep", *sys.argv[2:]]
    runpy.run_module("sweep", run_name="__main__", alter_sys=True)
