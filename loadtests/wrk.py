"""wrk, driven by loadtests/wrk/bench.lua, and its report read back (`make bench`).

Why wrk: it is C on an event loop (epoll), so two threads keep hundreds of connections busy
for a fraction of what the servers under test cost; a Python generator (Locust, requests in
threads) would need most of this machine's two cores itself and measure its own ceiling. Its
LuaJIT hooks build each request (a different buyer's cookie and CSRF token per buy, a new query
string per page) and read each answer (status, error code, order token), which wrk alone does
not report.

Latency is wrk's: from the request written to the answer read, on the connection that sent it,
with wrk's own correction for a stalled connection (it adds the requests such a connection
would have sent). An answer slower than ``timeout`` is counted as a timeout, not in the
percentiles.
"""

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools import devservers

SCRIPT = Path(__file__).resolve().parent / "wrk" / "bench.lua"
MARKER = "BENCH-JSON "
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


class WrkError(RuntimeError):
    """wrk did not run, or printed no report."""


@dataclass
class Result:
    requests: int  # answers read (wrk's count)
    seconds: float  # wrk's run time, or first request to last answer in "once" mode
    latency_ms: dict[str, float]  # p50, p90, p95, p99, p99.9, max, mean
    statuses: dict[int, int]
    errors: dict[str, int]  # "409 sold_out" -> n: the error codes of 4xx/5xx JSON answers
    socket_errors: dict[str, int]  # connect, read, write, timeout (answers over the timeout)
    tallies: dict[str, int] = field(default_factory=dict)  # values of the tallied header
    tokens: list[str] = field(default_factory=list)  # order tokens answered 202
    first: float | None = None  # epoch of the first request sent ("once" mode)
    last: float | None = None  # epoch of the last answer

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def real_failures(self) -> int:
        """5xx answers, answers over the timeout, and connections refused, reset or cut."""
        return self.server_errors + sum(self.socket_errors.values())


def parse(stdout: str, *, once: bool = False) -> Result:
    """The report bench.lua's done() prints; ``once``: the rate is the answers over the time
    from the first request to the last answer (wrk's own run time includes the wait for the
    harness to stop it)."""
    line = next((x for x in stdout.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        raise WrkError(f"no {MARKER.strip()} line in wrk's output:\n{stdout[-2000:]}")
    report = json.loads(line[len(MARKER) :])
    threads = report["threads"].values()
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    tallies: dict[str, int] = {}
    tokens: list[str] = []
    for t in threads:
        for status, n in t["statuses"].items():
            statuses[int(status)] = statuses.get(int(status), 0) + int(n)
        for kind, n in t["errors"].items():
            errors[kind] = errors.get(kind, 0) + int(n)
        for value, n in t["tallies"].items():
            tallies[value] = tallies.get(value, 0) + int(n)
        tokens.extend(t["tokens"].split())
    firsts = [t["first"] for t in threads if t["first"]]
    lasts = [t["last"] for t in threads if t["last"]]
    first, last = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
    seconds = report["duration_us"] / 1e6
    if once and first is not None and last is not None:
        seconds = last - first
    lat = report["latency_us"]
    latency_ms = {f"p{p}": (lat["percentiles"].get(p) or 0) / 1000 for p in lat["percentiles"]}
    latency_ms.update(max=(lat["max"] or 0) / 1000, mean=(lat["mean"] or 0) / 1000)
    return Result(
        requests=int(report["requests"]),
        seconds=seconds,
        latency_ms=latency_ms,
        statuses=dict(sorted(statuses.items())),
        errors=dict(sorted(errors.items())),
        socket_errors={k: int(report["errors"][k]) for k in SOCKET_ERRORS},
        tallies=dict(sorted(tallies.items())),
        tokens=tokens,
        first=first,
        last=last,
    )


def run(
    url: str,
    *,
    connections: int,
    duration: int,
    threads: int = 2,
    mode: str = "get",
    timeout: int = 5,
    tally: str | None = None,
    sessions: Path | None = None,
    workdir: Path | None = None,
) -> Result:
    """One wrk run of ``duration`` seconds (at most, in "once" mode: it is stopped as soon as
    every thread has its last answer)."""
    threads = max(1, min(threads, connections))
    args = [f"mode={mode}", f"threads={threads}"]
    if tally:
        args.append(f"tally={tally}")
    if sessions is not None:
        args.append(f"sessions={sessions}")
    done_file = None
    if mode == "once":
        if workdir is None:
            raise ValueError('mode "once" needs a workdir for its done file')
        done_file = workdir / f"wrk-done-{time.monotonic_ns()}"
        args.append(f"done_file={done_file}")
    command = [
        devservers.which("wrk"),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration}s",
        f"--timeout={timeout}s",
        f"--script={SCRIPT}",
        url,
        "--",
        *args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done_file is not None:
        _stop_when_done(proc, done_file, threads)
    try:
        stdout, stderr = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise WrkError(f"wrk did not end within {duration + 60}s: {' '.join(command)}") from None
    finally:
        if done_file is not None:
            done_file.unlink(missing_ok=True)
    if proc.returncode:
        raise WrkError(f"wrk exited {proc.returncode}: {stderr.strip()}\n{stdout[-2000:]}")
    if stderr.strip():  # a Lua error in a thread is printed, and the run goes on without it
        raise WrkError(f"wrk: {stderr.strip()}")
    return parse(stdout, once=mode == "once")


def _stop_when_done(proc: subprocess.Popen, done_file: Path, threads: int) -> None:
    """wrk's main thread sleeps out --duration whatever its threads do; SIGINT wakes it up
    to report (its handler only ends the run)."""
    while proc.poll() is None:
        if done_file.exists() and len(done_file.read_text().split()) >= threads:
            os.kill(proc.pid, signal.SIGINT)
            return
        time.sleep(0.02)
