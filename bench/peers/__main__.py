"""``python -m bench.peers [--quick]``: the peers section alone, its rows printed as JSON lines
(``python -m bench --only peers`` runs it among the others and writes bench/results.json)."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from . import FULL, QUICK, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the tiny pose task only, one seed (minutes)")
    parser.add_argument("--task", action="append", choices=["pose", "classify"],
                        help="only this task (repeatable); default: every task of the mode")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.task:
        settings = replace(settings, tasks=tuple(args.task))
    for r in run(quick=args.quick, settings=settings):
        print(json.dumps(r, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
