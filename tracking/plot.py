"""``pareto.png``: accuracy against compression, every trial in grey, the front highlighted."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mqat import atomic_write

from .objectives import Objective

NICE = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # compressions worth a label wherever trials lie


def front_ticks(front: list[float], every: list[float], *, min_gap: float = 0.07) -> list[float]:
    """X ticks (log axis) that read across the whole range of ``every`` trial's compression: the
    front's compressions, and round values (:data:`NICE`) between them where there is room (the
    grey trials at 4-9x had no label when only the front's were shown); thinned so that
    neighbouring labels sit at least ``min_gap`` of the axis' log span apart (14.75x, 15.4x, 15.9x
    would print over each other). The front's labels go first."""
    values = [c for c in every + front if c > 0]
    if not values:
        return [1, 2, 4, 8, 16]
    low, high = min(values), max(values)
    gap = min_gap * max(math.log10(high / low), 0.1)
    kept: list[float] = []
    front_first = sorted({round(c, 1) for c in front})
    nice = [float(n) for n in NICE if low / 1.05 <= n <= high * 1.05]
    for tick in front_first + nice:
        if all(abs(math.log10(tick / k)) >= gap for k in kept):
            kept.append(tick)
    return sorted(kept)


def plot_front(rows: list[dict[str, Any]], path: str | Path, *, fp_accuracy: float | None = None,
               fp_test_accuracy: float | None = None, ylabel: str = "accuracy",
               title: str = "Accuracy versus compression") -> Path:
    """Draw the trials and their Pareto front (validation accuracy, which the search ranked),
    the front's held-out test accuracy where it was measured, and the FP accuracy as a line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("accuracy") is not None and r.get("compression") is not None]
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r["compression"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([r["compression"] for r in done], [r["accuracy"] for r in done], s=22, color="0.65",
               label=f"trials ({len(done)})", zorder=2)
    if front:
        ax.errorbar([r["compression"] for r in front], [r["accuracy"] for r in front],
                    yerr=[r.get("accuracy_se") or 0.0 for r in front], color="tab:red", marker="o",
                    ms=6, lw=1.8, capsize=3, label="Pareto front", zorder=3)
    tested = [r for r in front if r.get("test_accuracy") is not None]
    if tested:
        ax.errorbar([r["compression"] for r in tested], [r["test_accuracy"] for r in tested],
                    yerr=[r.get("test_accuracy_se") or 0.0 for r in tested], color="tab:green",
                    marker="s", ms=6, lw=1.8, capsize=3, label="front on the test split", zorder=3)
    seeds = [r for r in done if r.get("ilp_seed")]
    if seeds:
        ax.scatter([r["compression"] for r in seeds], [r["accuracy"] for r in seeds], s=120,
                   facecolors="none", edgecolors="tab:blue", linewidths=1.5, label="ILP seeds", zorder=4)
    if fp_accuracy is not None:
        ax.axhline(fp_accuracy, color="k", ls="--", lw=1, label=f"full precision ({fp_accuracy:.3f})")
    if fp_test_accuracy is not None and tested:
        ax.axhline(fp_test_accuracy, color="tab:green", ls=":", lw=1,
                   label=f"full precision, test ({fp_test_accuracy:.3f})")
    ax.set_xscale("log")
    ticks = front_ticks([r["compression"] for r in front], [r["compression"] for r in done])
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("compression (weights, 32-bit = 1x; log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def plot_objective(rows: list[dict[str, Any]], objective: Objective, path: str | Path, *,
                   ylabel: str = "accuracy", objectives: int = 3) -> Path:
    """A search of more than two objectives, seen a pair at a time: ``objective`` against accuracy
    and against compression, every trial in grey, the front (of all ``objectives``) in red."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = objective.key
    done = [r for r in rows if r.get(key) is not None and r.get("accuracy") is not None]
    front = [r for r in done if r["pareto"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for ax, (other, label) in zip(axes, [("accuracy", ylabel), ("compression", "compression (x)")]):
        ax.scatter([r[key] for r in done], [r[other] for r in done], s=22, color="0.65",
                   label=f"trials ({len(done)})", zorder=2)
        ax.scatter([r[key] for r in front], [r[other] for r in front], s=40, color="tab:red",
                   label=f"Pareto front ({objectives} objectives)", zorder=3)
        ax.set_xlabel(objective.label)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"{objective.name.capitalize()} against accuracy and compression")
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
