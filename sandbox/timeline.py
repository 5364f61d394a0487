"""The timeline picture: per-instance phases as bars, serving capacity as a line, in simulated time."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from sandbox.fleet import Fleet

COLOURS = {
    "draining": "#f2a541",
    "booting": "#d1495b",
    "starting app": "#8e6c8a",
    "health checks": "#66a182",
}


def render(fleet: Fleet, t0: float, t1: float, *, floor: int | None, path: Path, title: str) -> Path:
    names = fleet.names
    ids = sorted(fleet.instances, key=lambda i: names.get(i, i))
    tl = fleet.timeline(t0, t1, step=max(1.0, (t1 - t0) / 2000))
    minutes = [(t - t0) / 60 for t in tl.times]

    height = 2.2 + 0.28 * len(ids)
    fig, (bars, line) = plt.subplots(
        2, 1, figsize=(11, height + 2.4), sharex=True, gridspec_kw={"height_ratios": [height, 2.4]}
    )
    for row, instance_id in enumerate(ids):
        for phase, began, ended in fleet.phases(instance_id):
            start, end = max(began, t0), min(ended, t1)
            if end > start:
                bars.broken_barh([((start - t0) / 60, (end - start) / 60)], (row - 0.4, 0.8), color=COLOURS[phase])
    bars.set_yticks(range(len(ids)), [names.get(i, i) for i in ids], fontsize=7)
    bars.invert_yaxis()
    bars.set_title(title, fontsize=10)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    bars.legend(handles, list(COLOURS), loc="upper right", fontsize=7, ncols=4)
    bars.grid(axis="x", alpha=0.3)

    line.step(minutes, tl.serving, where="post", color="#2e4057", label="serving (in service and answering)")
    if floor is not None:
        line.axhline(floor, color="#d1495b", linestyle="--", linewidth=1, label=f"floor ({floor})")
    line.set_ylim(0, len(ids) + 1)
    line.set_ylabel("instances")
    line.set_xlabel("minutes since the execution started (simulated time)")
    line.legend(loc="lower right", fontsize=7)
    line.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
