"""The section's rows read as a person reads them: per task and arm, each target's test accuracy
and compression as mean +- standard deviation over seeds, x FP, the hypervolume over seeds, the
compute, and the dominance counts. ``python -m bench.peers --summary rows.jsonl`` prints it for
rows saved earlier."""
from __future__ import annotations

import statistics
from collections import defaultdict


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.3f} +- {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def summary(rows: list[dict]) -> str:
    """A text table per task."""
    lines = []
    for task in sorted({r["task"] for r in rows if r.get("task")}):
        mine = [r for r in rows if r.get("task") == task]
        lines += [f"== {task}", f"{'arm':<30} {'target':>6} {'compression':>14} {'test accuracy':>16} {'x FP':>5} seeds"]
        points = defaultdict(list)
        for r in mine:
            if r.get("compression") is not None and r.get("target") is not None:
                points[r["arm"], r["target"]].append(r)
        for (arm, target), found in sorted(points.items()):
            x_fp = [r["speedup_vs_fp"] for r in found if r.get("speedup_vs_fp")]
            lines.append(f"{arm:<30} {target:>6g} {_spread([r['compression'] for r in found]):>14} "
                         f"{_spread([r['value'] for r in found]):>16} "
                         f"{statistics.median(x_fp) if x_fp else float('nan'):>5.2f} {len(found)}")
        fronts = defaultdict(list)
        for r in mine:
            if r.get("compression") is not None and r.get("target") is None:
                fronts[r["arm"]].append(r)
        for arm, found in sorted(fronts.items()):
            lines.append(f"{arm}: front points (seed: compression test accuracy +- SE) "
                         + "; ".join(f"{r['seed']}: {r['compression']:.2f}x {r['value']:.3f}+-{r['accuracy_se']:.3f}"
                                     for r in sorted(found, key=lambda r: (r['seed'], r['compression']))))
        volumes = defaultdict(list)
        for r in mine:
            if r["what"].endswith(": hypervolume"):
                volumes[r["arm"]].append(r["value"])
        lines += [f"{arm:<30} hypervolume {_spread(v)} over {len(v)} seeds" for arm, v in sorted(volumes.items())]
        lines += [f"{r['arm']:<30} seed {r['seed']}: trained {r['value']:,} images; {r['note']}"
                  for r in mine if r["what"].endswith(": compute")]
        for arm in sorted({a for a, _ in points}):
            runs = [r for (a, _), found in points.items() if a == arm for r in found]
            seeds = len({r["seed"] for r in runs})
            lines.append(f"{arm:<30} per seed: trained {sum(r['trained_images'] for r in runs) // seeds:,} images in "
                         f"{sum(r['train_s'] for r in runs) / seeds:.0f} s, chose every target's bits in "
                         f"{runs[0]['choose_s']:.0f} s")
        lines += [f"{r['what']}: {r['note']}" for r in mine if " dominates " in r["what"]]
    return "\n".join(lines)
