"""bench.png: requests/s and p99 latency per scenario and connection count (`make bench`).

One row per scenario, a bar per connection count; the buy rows are coloured by strategy so
gate and db-lock sit side by side. The machine and the versions are printed under the bars.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from loadtests.cpuload import NOISY

COLOURS = {None: "#4c72b0", "gate": "#2a9d5c", "db-lock": "#d1603d"}
GROUP_NAMES = {None: "pages and probes", "gate": "buy: gate", "db-lock": "buy: db-lock"}
HATCHES = ["", "//", "..", "xx"]  # one per connection count, in the run's order


def draw(report: dict, path: Path) -> Path:
    runs = report["runs"]
    rows = list(dict.fromkeys((x["key"], x["title"], x["strategy"]) for x in runs))
    connections = sorted({x["connections"] for x in runs})
    by = {(x["key"], x["connections"]): x for x in runs}
    height = 0.8 / max(1, len(connections))

    fig, axes = plt.subplots(
        1,
        2,
        figsize=(14, 1.2 + 0.55 * max(1, len(rows)) * max(1, len(connections)) / 1.6),
        sharey=True,
        layout="constrained",
    )
    panels = [
        (
            axes[0],
            "requests/s, log scale (accepted buys: answers/s)",
            lambda x: x["rps"],
            "{:,.0f}",
        ),
        (axes[1], "p99 latency, ms (log scale)", lambda x: x["latency_ms"].get("p99"), "{:,.1f}"),
    ]
    for ax, title, value, fmt in panels:
        for i, (key, _, strategy) in enumerate(rows):
            for j, c in enumerate(connections):
                run = by.get((key, c))
                v = value(run) if run else None
                if v is None:
                    continue
                y = i + (j - (len(connections) - 1) / 2) * height
                ax.barh(
                    y,
                    v,
                    height=height * 0.9,
                    color=COLOURS[strategy],
                    hatch=HATCHES[j % len(HATCHES)],
                    edgecolor="white",
                    linewidth=0,
                )
                noisy = run["others_cpu"] > NOISY  # a neighbour took CPU meanwhile
                ax.annotate(
                    fmt.format(v) + ("*" if noisy else ""),
                    (v, y),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.18)
    for ax in axes:  # nginx answers 10-100x faster than Django: both scales are logarithmic
        ax.set_xscale("log")
    axes[0].set_yticks(range(len(rows)), [title for _, title, _ in rows], fontsize=9)
    axes[0].invert_yaxis()
    for label, (_, _, strategy) in zip(axes[0].get_yticklabels(), rows, strict=True):
        label.set_color(COLOURS[strategy] if strategy else "black")

    groups = list(dict.fromkeys(strategy for _, _, strategy in rows))
    handles = [Patch(color=COLOURS[g], label=GROUP_NAMES[g]) for g in groups]
    handles += [
        Patch(
            facecolor="#999999",
            hatch=HATCHES[j % len(HATCHES)],
            edgecolor="white",
            label=f"{c} connections",
        )
        for j, c in enumerate(connections)
    ]
    axes[0].legend(handles=handles, loc="lower right", fontsize=8)  # short bars there

    m, g, gen = report["machine"], report["gunicorn"], report["generator"]
    fig.suptitle("qbuy: make bench", fontsize=12)
    machine = " | ".join(
        [
            f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['kernel']}",
            f"Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}"
            f" ({g['workers']} {g['worker_class']} workers), nginx {m['nginx']},"
            f" Postgres {m['postgres']}, Redis {m['redis']}",
            f"wrk, {gen['threads']} threads, {gen['duration_s']}s per run",
        ]
    )
    if any(x["others_cpu"] > NOISY for x in runs):
        machine += f"\n* other processes used more than {NOISY:.0%} of the CPU during that run"
    fig.supxlabel(machine, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
