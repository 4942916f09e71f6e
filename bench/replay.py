"""The project's searches replayed against the recorded MQAT table (``bench/tables/pose-grid``).

A replay runs the search's own logic: the define-by-run space (``spaces.define_space`` over the
table's grid: every order and the joint flow, bits {2, 3, 4, 8}, the rest fixed as recorded), the
samplers of ``search.samplers``, the ILP seed points (``spaces.seed_points`` from the table's
sensitivity), the retired MOASHA scheduler's decision rule (``bench.moasha``) and the feedback
the search gave Optuna (finished: COMPLETE with accuracy and compression; stopped: PRUNED). Only
the training is replaced: a configuration is answered by one of its recorded trials (a replicate
drawn at random when it has several: the noise of a real rerun), stage by stage, on simulated
asynchronous workers with a simulated clock (each stage lasts what it lasted when recorded), as
Syne Tune's simulator backend does. Every configuration the space can propose is on the grid, so
none goes unanswered.

Compute is counted in module stages, three to a full trial (a joint trial's one stage trains the
same images as three); a trial stopped after its first module cost one. A front is chosen as the
search chooses it, by the validation accuracy its trials reported, and graded by the mean test
accuracy of the configurations on it (over their recorded replicates): a fraction of HV*, the
hypervolume of the table's exact front graded the same way (reference: accuracy 0, compression 1x).
"""
from __future__ import annotations

import functools
import heapq
import json
import math
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracking.pareto import REFERENCE, hypervolume

ROOT = Path(__file__).resolve().parent
TABLE = ROOT / "tables" / "pose-grid.jsonl"
PRIORS = ROOT / "tables" / "pose-grid.priors.json"
STAGES_PER_TRIAL = 3


@dataclass
class Table:
    """The recorded trials by configuration, and what the search knows before it trains."""

    rows: dict[str, list[dict[str, Any]]]
    priors: dict[str, Any]
    modules: tuple[str, ...] = ("backbone", "fpn", "head")
    bits: tuple[int, ...] = (2, 3, 4, 8)

    @classmethod
    def load(cls, table: Path = TABLE, priors: Path = PRIORS) -> Table:
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in table.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if row["status"] == "finished":
                    rows[row["config"]].append(row)
        return cls(dict(rows), json.loads(priors.read_text()))

    def key(self, config: dict[str, Any]) -> str:
        return f"{config['order']} {'-'.join(str(config[f'bits_{m}']) for m in self.modules)}"

    def test_mean(self, key: str) -> float:
        return statistics.mean(r["test_accuracy"] for r in self.rows[key])

    @functools.cached_property
    def hv_star(self) -> float:
        """The hypervolume of every recorded configuration, graded by its mean test accuracy."""
        return hypervolume([(self.test_mean(k), rows[0]["compression"]) for k, rows in self.rows.items()],
                           REFERENCE)

    def complete(self) -> bool:
        """Whether every configuration of the grid was recorded (a replay needs all of them)."""
        return len(self.rows) == len(self.bits) ** len(self.modules) * (math.factorial(len(self.modules)) + 1)


@dataclass(frozen=True)
class Arm:
    """A search to replay: a sampler of ``search.samplers``, with or without the ILP seeds, and
    with or without MOASHA (its rungs and eta)."""

    name: str
    sampler: str
    ilp_seeds: bool = True
    #: MOASHA's rungs: the module stages (0: after the first) at which it judges (None: no MOASHA)
    moasha: tuple[int, ...] | None = None
    eta: int = 2


@dataclass
class Curve:
    """A replay's outcome: after each trial's end, (compute in stages, fraction of HV*)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    trials: int = 0
    stopped: int = 0

    def at(self, compute: float) -> float:
        """The fraction reached with at most ``compute`` stages spent."""
        return max((f for c, f in self.points if c <= compute), default=0.0)

    def to_reach(self, fraction: float) -> float | None:
        """Stages spent when ``fraction`` of HV* was first reached (None: never)."""
        return next((c for c, f in self.points if f >= fraction), None)

    def area(self, compute: float) -> float:
        """The mean fraction over [0, compute] stages (the area under the step curve, normalised)."""
        total, last_c, last_f = 0.0, 0.0, 0.0
        for c, f in self.points:
            if c > compute:
                break
            total += (c - last_c) * last_f
            last_c, last_f = c, max(last_f, f)
        return (total + (compute - last_c) * last_f) / compute


def space_config(table: Table):
    """The grid as the search's own space: what the recording fixed stays fixed."""
    from spaces import SpaceConfig

    return SpaceConfig(modules=table.modules, order="search", joint=True, weight_bits=table.bits, ema=False,
                       qc=False, bn=True, lr=(1e-4, 1e-4), epochs_per_stage=1)


def seeds(table: Table, space, targets=(4.0, 8.0, 12.0)) -> list[dict[str, Any]]:
    """The ILP seed points the real search would run first (``search.prepare``'s)."""
    import mqat
    from search.prepare import TARGET_WINDOW
    from spaces import seed_points

    sensitivity = mqat.SensitivityTable.from_dict(table.priors["sensitivity"])
    plans = mqat.solve_bit_plans(sensitivity, table.priors["weight_counts"], targets=list(targets),
                                 fp_weights=table.priors["fp_weights"], choices=list(table.bits), act_bits=8,
                                 window=TARGET_WINDOW)
    return seed_points(plans, space, sensitivity)


class _Front:
    """The front a search holds, chosen by validation accuracy, kept incrementally (a trial that
    does not enter it changes nothing), and its grade as a fraction of HV*."""

    def __init__(self, table: Table):
        self.table, self.members, self.fraction = table, [], 0.0

    def add(self, key: str, accuracy: float, compression: float) -> float:
        if any(a >= accuracy and c >= compression and (a > accuracy or c > compression)
               for _, a, c in self.members):
            return self.fraction
        self.members = [m for m in self.members if not (accuracy >= m[1] and compression >= m[2]
                                                        and (accuracy > m[1] or compression > m[2]))]
        self.members.append((key, accuracy, compression))
        graded = [(self.table.test_mean(k), c) for k, _, c in self.members]
        self.fraction = hypervolume(graded, REFERENCE) / self.table.hv_star
        return self.fraction


def replay(table: Table, arm: Arm, seed: int, *, budget_trials: float = 48, workers: int = 2) -> Curve:
    """One search of ``arm`` with ``seed`` on ``workers`` simulated workers, until it has spent
    ``budget_trials`` full trials' stages (trials then running are not counted)."""
    import optuna
    from optuna.trial import TrialState

    import mqat
    from search.samplers import SamplerContext, make_sampler
    from spaces import define_space

    from .moasha import MoashaRule

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space_config(table)
    points = seeds(table, space) if arm.ilp_seeds else []
    sampler = make_sampler(arm.sampler, SamplerContext(
        seed, len(points), workers, space, mqat.SensitivityTable.from_dict(table.priors["sensitivity"]),
        table.priors["weight_counts"], table.priors["fp_weights"]))
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    for point in points:
        study.enqueue_trial(point)
    rule = MoashaRule(arm.eta) if arm.moasha else None
    rng = random.Random(seed)
    curve, front, spent = Curve(), _Front(table), 0.0
    events: list[tuple[float, int, int]] = []   # (time, sequence, trial number)
    running: dict[int, dict[str, Any]] = {}
    sequence = 0

    def start(now: float) -> None:
        nonlocal sequence
        trial = study.ask()
        fixed = define_space(trial, space)
        config = {**trial.params, **fixed}
        row = rng.choice(table.rows[table.key(config)])
        running[trial.number] = {"trial": trial, "row": row, "stage": 0, "key": table.key(config)}
        heapq.heappush(events, (now + row["stages"][0]["seconds"], sequence, trial.number))
        sequence += 1

    for _ in range(workers):
        start(0.0)
    budget = budget_trials * STAGES_PER_TRIAL
    while events and spent < budget:
        now, _, number = heapq.heappop(events)
        state = running[number]
        row, stage = state["row"], state["stage"]
        stages = row["stages"]
        if stage < len(stages):  # a module stage ended
            spent += STAGES_PER_TRIAL if row["order"] == "uniform" else 1
            accuracy = stages[stage]["accuracy"]
            # judged at the arm's rungs only, as the search's scheduler did (a replay that judged
            # every stage, the last included, once stood for it: docs/benchmarks.md)
            judged = rule is not None and stage in (arm.moasha or ())
            stop = judged and not rule.promotes(str(number), stage, accuracy, row["compression"])
            if stop:
                study.tell(state["trial"], None, state=TrialState.PRUNED)
                curve.stopped += 1
                del running[number]
                start(now)
                continue
            state["stage"] = stage + 1
            last = stage + 1 == len(stages)
            wait = row["seconds"] - sum(s["seconds"] for s in stages) if last else stages[stage + 1]["seconds"]
            heapq.heappush(events, (now + max(wait, 0.0), sequence, number))
            sequence += 1
            continue
        # the final scoring ended: the trial is finished
        study.tell(state["trial"], [row["val_accuracy"], row["compression"]])
        curve.trials += 1
        curve.points.append((spent, front.add(state["key"], row["val_accuracy"], row["compression"])))
        del running[number]
        start(now)
    return curve


def _median_iqr(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[1], q[0], q[2]


_SAMPLERS = (Arm("random", "random", ilp_seeds=False), Arm("tpe", "tpe"), Arm("nsga2", "nsga2"),
             Arm("gp", "gp"), Arm("ilp-guided (the default)", "ilp"))
#: every sampler, with and without MOASHA (rungs after the first and second module, eta 2; see ``Arm.moasha``)
ARMS = _SAMPLERS + tuple(Arm(f"{a.name} + moasha", a.sampler, a.ilp_seeds, moasha=(0, 1)) for a in _SAMPLERS)


def summarise(name: str, curves: list[Curve], marks=(12, 24, 48)) -> dict[str, Any]:
    out: dict[str, Any] = {"arm": name, "seeds": len(curves)}
    for trials in marks:
        out[f"hv@{trials}"] = _median_iqr([c.at(trials * STAGES_PER_TRIAL) for c in curves])
    out["area@48"] = _median_iqr([c.area(48 * STAGES_PER_TRIAL) for c in curves])
    for goal in (0.95, 0.99):
        reached = [c.to_reach(goal) for c in curves]
        hit = [r / STAGES_PER_TRIAL for r in reached if r is not None]
        out[f"to{goal}"] = (statistics.median(hit) if len(hit) * 2 > len(curves) else None, len(hit))
    out["stopped"] = statistics.mean(c.stopped for c in curves)
    return out


def format_summary(rows: list[dict[str, Any]], hv_star: float) -> str:
    lines = [(f"fraction of HV* ({hv_star:.4f}): median [interquartile range] over seeds, at 12 / 24 / 48 trials' "
              "compute; compute (in full trials) to 0.95 and 0.99 of HV*, median over the seeds that reached it"),
             f"{'arm':<28} {'@12':>19} {'@24':>19} {'@48':>19} {'area@48':>7} {'to 0.95':>12} {'to 0.99':>12}"]
    for r in rows:
        cells = [f"{m:.3f} [{lo:.3f}-{hi:.3f}]" for m, lo, hi in (r["hv@12"], r["hv@24"], r["hv@48"])]
        reach = [f"{v:.1f} ({n}/{r['seeds']})" if v is not None else f"- ({n}/{r['seeds']})"
                 for v, n in (r["to0.95"], r["to0.99"])]
        lines.append(f"{r['arm']:<28} {cells[0]:>19} {cells[1]:>19} {cells[2]:>19} {r['area@48'][0]:>7.3f} "
                     f"{reach[0]:>12} {reach[1]:>12}")
    return "\n".join(lines)


def run_arms(table: Table, arms=ARMS, *, seeds: int = 20, budget_trials: float = 48, workers: int = 2,
             log=print) -> list[dict[str, Any]]:
    rows = []
    for arm in arms:
        curves = [replay(table, arm, seed, budget_trials=budget_trials, workers=workers) for seed in range(seeds)]
        rows.append(summarise(arm.name, curves))
        log(format_summary(rows[-1:], table.hv_star).splitlines()[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=float, default=48, help="compute per search, in full trials (default 48)")
    parser.add_argument("--workers", type=int, default=2, help="trials at a time (default 2, the quickstart's)")
    parser.add_argument("--arms", help=f"comma-separated arm names (default all: {', '.join(a.name for a in ARMS)})")
    args = parser.parse_args(argv)
    table = Table.load()
    if not table.complete():
        print(f"bench.replay: error: the table holds {len(table.rows)} of the grid's configurations: a replay "
              "answers every configuration the space can propose; finish it with python -m bench.record",
              file=sys.stderr)
        return 2
    arms = [a for a in ARMS if not args.arms or a.name in args.arms.split(",")]
    start = time.perf_counter()
    print(f"{len(arms)} arms x {args.seeds} seeds; each arm's line as it ends (progress), the table at the end",
          file=sys.stderr, flush=True)
    rows = run_arms(table, arms, seeds=args.seeds, budget_trials=args.budget, workers=args.workers,
                    log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_summary(rows, table.hv_star))
    print(f"{len(arms)} arms x {args.seeds} seeds in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
