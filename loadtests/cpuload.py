"""Who used the CPU during a bench run: the bench's own process tree (the stack under test and
wrk are all its descendants) or something else on the machine.

A shared machine makes throughput figures wrong without saying so; this says so. From
/proc/stat (the whole machine: everything but idle and iowait, steal included, the time a
hypervisor gave to other guests) and /proc/<pid>/stat (utime, stime, and the cutime/cstime of
reaped children: wrk, the Postgres backends). Interrupt time counts on the machine's side: the
kernel charges much of the loopback traffic's softirq work to the process it interrupted, and
without it the bench alone seemed to use more CPU than the whole machine.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
NOISY = 0.10  # a run during which other processes used more of the machine's CPU is flagged


def machine_busy() -> float:
    """CPU seconds the machine spent neither idle nor waiting for I/O since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds used by ``root`` and its descendants, and the children they reaped."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # after "pid (comm)": state ppid ... utime(12th) stime cutime cstime
        fields = stat.rpartition(")")[2].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        used[pid] = sum(int(x) for x in fields[11:15]) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


@dataclass
class Snapshot:
    at: float
    machine: float
    ours: float

    @classmethod
    def take(cls) -> "Snapshot":
        return cls(time.monotonic(), machine_busy(), tree_cpu(os.getpid()))


def others_share(before: Snapshot, after: Snapshot) -> float:
    """The share of the machine's CPU (0-1, all cores) that something else used in between."""
    capacity = (after.at - before.at) * (os.cpu_count() or 1)
    if capacity <= 0:
        return 0.0
    others = (after.machine - before.machine) - (after.ours - before.ours)
    return min(1.0, max(0.0, others / capacity))
