"""``bench/runs/peers/<task>.png``: every arm's points on the test split with their standard
errors, an arm a colour and a marker, seeds together, so the arms' clouds read side by side."""
from __future__ import annotations

from pathlib import Path

from mqat import atomic_write

from .rows import points
from .tasks import ROOT

OUT = ROOT / "bench" / "runs" / "peers"
MARKERS = "osD^v<>p"


def plot(task: str, rows: list[dict], directory: Path | None = None) -> Path | None:
    """Draw ``task``'s points (test accuracy +- standard error against compression); ``None``
    when it has none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {(a, s): p for (t, a, s), p in points(rows).items() if t == task}
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, arm in enumerate(sorted({a for a, _ in found})):
        mine = [r for (a, _), p in found.items() if a == arm for r in p]
        ax.errorbar([r["compression"] for r in mine], [r["value"] for r in mine],
                    yerr=[r.get("accuracy_se") or 0.0 for r in mine], fmt=MARKERS[i % len(MARKERS)],
                    color=f"C{i}", alpha=0.75, capsize=2, markersize=5, label=arm)
    ax.set_xscale("log")
    compressions = [r["compression"] for p in found.values() for r in p]
    ticks = [t for t in (2, 3, 4, 6, 8, 10, 12, 16, 24, 32) if min(compressions) / 1.1 <= t <= max(compressions) * 1.1]
    ax.set_xticks(ticks, [f"{t}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weight compression (x, log scale)")
    ax.set_ylabel("test accuracy (+- standard error)")
    ax.set_title(f"{task}: peers and mqat-search, every seed")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    try:
        return atomic_write((directory or OUT) / f"{task}.png", lambda f: fig.savefig(f, format="png", dpi=120,
                                                                            bbox_inches="tight"))
    finally:
        plt.close(fig)
