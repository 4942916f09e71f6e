"""``pareto.png``: accuracy against compression, every trial in grey, the front highlighted."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def plot_front(rows: list[dict[str, Any]], path: str | Path, *, fp_accuracy: float | None = None,
               fp_test_accuracy: float | None = None,
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
    ticks = sorted({round(r["compression"], 1) for r in front}) or [1, 2, 4, 8, 16]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("compression (weights, 32-bit = 1x; log scale)")
    ax.set_ylabel("accuracy (ADD-0.1d)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp.name, path)
    return path
