"""The ``mqat`` command line.

Exit status: 0 on success; 2, with one line on stderr, on bad input (nothing is written);
1 when something fails while running.
"""
from __future__ import annotations

import argparse
import sys

from .config import ConfigError, first_line, load_config
from .prepare import format_pretrain


def _pretrain(args: argparse.Namespace) -> int:
    from trainables.pretrain import load_model, pretrain

    config = load_config(args.config)
    task = config.task_instance(progress=not args.quiet)
    if config.pretrain.checkpoint:
        try:
            load_model(task, config.pretrain.checkpoint)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    try:
        result = pretrain(task, config.pretrain, cache_dir=config.cache_dir, progress=not args.quiet)
    except ValueError as err:  # data that turn out unreadable while loading
        raise ConfigError(str(err)) from None
    print(format_pretrain(result, task.metric))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from .prepare import check, describe, prepare, with_units

    config = load_config(args.config)
    if args.targets:
        from dataclasses import replace
        config = replace(config, search=replace(config.search, targets=tuple(args.targets)))
    checked = check(config, progress=not args.quiet)
    config = with_units(config, checked)
    print(describe(prepare(config, checked, progress=not args.quiet)))
    return 0


def _layers(args: argparse.Namespace) -> int:
    """Every conv and linear layer of the task's network, in model order, with its module: what
    a module map's prefixes name (nothing is trained or written)."""
    config = load_config(args.config)
    task = config.task_instance(progress=False)
    model, module_map = task.build_model(), task.module_map
    fixed = module_map.fixed_fp_layers(model)
    print(f"{'layer':<40} {'type':<7} {'weights':>10}  module")
    counts = dict.fromkeys(module_map.names, 0)
    for name, layer in module_map.quantizable(model):
        owners = module_map.owners(name)
        owner = ", ".join(owners) if owners else "(none: add a prefix for it)"
        kept = "  (kept at full precision: first/last layer)" if name in fixed else ""
        print(f"{name:<40} {type(layer).__name__:<7} {layer.weight.numel():>10,}  {owner}{kept}")
        if len(owners) == 1 and not kept:
            counts[owners[0]] += layer.weight.numel()
    if sum(counts.values()):
        from .prepare import module_shares

        fp = sum(layer.weight.numel() for name, layer in module_map.quantizable(model) if name in fixed)
        print(module_shares(counts, fp, module_map))
    return 0


def _search(args: argparse.Namespace) -> int:
    import time

    from tracking.results import format_front

    from .run import run_search

    config = load_config(args.config)
    if args.check:
        from .run import validate
        config, checked, _ = validate(config, num_samples=args.num_samples, resume=args.resume,
                                      address=args.address)
        print(f"{args.config}: valid; {config.search.num_samples} trials of the {config.search.method} "
              f"search, up to {checked.max_compression:.2f}x compression")
        return 0
    start = time.monotonic()
    result = run_search(config, address=args.address, resume=args.resume,
                        num_samples=args.num_samples, progress=not args.quiet)
    rows = result.rows
    finished, failed = (sum(r["status"] == s for r in rows) for s in ("finished", "failed"))
    print(f"\nPareto front of {finished} finished trials ({failed} failed), accuracy = {result.metric.name} "
          f"+- standard error:")
    print(format_front(rows, result.metric))
    print(f"search: {result.location or result.path} ({(time.monotonic() - start) / 60:.1f} min)")
    print(ending(rows, result.budget_spent, config.search.budget_trials))
    expected = args.num_samples or config.search.num_samples
    if finished + failed < expected and not result.budget_spent:
        print(f"the search stopped early; continue it with: mqat search --config {args.config} --resume",
              file=sys.stderr)
        return 130
    if failed and not finished:  # nothing to rank: a failure, whatever Tune made of it
        first = next(r["error"] for r in rows if r["status"] == "failed")
        print(f"mqat: failed: all {failed} trials failed; the first with: {first}", file=sys.stderr)
        return 1
    return 0


def ending(rows: list[dict], budget_spent: bool, budget_trials: float | None) -> str:
    """How the search ended, in a line: trials by status, and the budget if it ended the search."""
    count = {s: sum(r["status"] == s for r in rows) for s in ("finished", "failed", "unfinished")}
    line = f"trials: {', '.join(f'{n} {s}' for s, n in count.items() if n) or 'none'}"
    if budget_spent:
        line += f"; the stage budget of {budget_trials:g} full trials is spent"
        if count["unfinished"]:
            line += f" ({count['unfinished']} cut off unfinished)"
    return line


def _report(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from tracking.report import PLOT_FILE, TABLE_FILE, load_metric, report, resolve
    from tracking.results import format_front

    from . import storage

    try:
        target = resolve(args.target, args.tracking_uri)
        if not storage.is_uri(target):
            rows, metric, where = report(target), load_metric(target), target
        else:  # the trials' results (not their checkpoints) come down; table and plot go back up
            with tempfile.TemporaryDirectory() as temp:
                storage.download(target, Path(temp))
                rows = report(Path(temp), where=lambda trial: storage.join(target, trial))
                metric = load_metric(Path(temp))
                storage.upload([Path(temp) / TABLE_FILE, Path(temp) / PLOT_FILE], target)
            where = target
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except OSError as err:
        raise ConfigError(f"cannot read {args.target}: {first_line(err)}") from None
    finished = sum(r["status"] == "finished" for r in rows)
    print(f"{where}: {finished} finished of {len(rows)} trials")
    print(format_front(rows, metric))
    print(f"table: {storage.join(str(where), TABLE_FILE)}\nplot: {storage.join(str(where), PLOT_FILE)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mqat", description="Pareto search of accuracy versus "
                                "compression with modular quantization-aware training.")
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="train (or reuse) the full-precision model of a config")
    pre.add_argument("--config", required=True, help="YAML config, e.g. configs/quickstart.yaml")
    pre.add_argument("--quiet", action="store_true", help="no progress bars")
    pre.set_defaults(run=_pretrain)

    plan = sub.add_parser("plan", help="print the sensitivity table and the ILP plans for targets")
    plan.add_argument("--config", required=True)
    plan.add_argument("--targets", type=float, nargs="+", help="compression targets (default: the config's)")
    plan.add_argument("--quiet", action="store_true")
    plan.set_defaults(run=_plan)

    layers = sub.add_parser("layers", help="list the network's quantizable layers and the module of each")
    layers.add_argument("--config", required=True)
    layers.set_defaults(run=_layers)

    search = sub.add_parser("search", help="run the Pareto search of a config")
    search.add_argument("--config", required=True)
    search.add_argument("--num-samples", type=int, help="trials to run (default: the config's)")
    search.add_argument("--address", help="an existing Ray cluster, e.g. 127.0.0.1:6379 or auto")
    search.add_argument("--resume", action="store_true", help="continue the latest search of the config")
    search.add_argument("--check", action="store_true",
                        help="only validate the config (nothing is written or started)")
    search.add_argument("--quiet", action="store_true")
    search.set_defaults(run=_search)

    rep = sub.add_parser("report", help="print a search's front and rewrite its table and plot")
    rep.add_argument("target", help="the search directory or URI (s3://...), or its MLflow parent run id")
    rep.add_argument("--tracking-uri", help="MLflow store to look a run id up in")
    rep.set_defaults(run=_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as err:
        message = " ".join(str(err).splitlines())  # one line, whatever the message holds
        print(f"mqat: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (f"; continue with: mqat search --config {args.config} --resume"
                if args.command == "search" else "")
        print(f"mqat: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns failures into status 1
        print(f"mqat: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
