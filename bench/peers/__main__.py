"""``python -m bench.peers [--quick]``: the peers section alone, its rows printed as JSON lines
(``python -m bench --only peers`` runs it among the others and writes bench/results.json)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from . import FULL, QUICK, run
from .summary import summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the tiny pose task only, one seed (minutes)")
    parser.add_argument("--task", action="append", choices=["pose", "classify"],
                        help="only this task (repeatable); default: every task of the mode")
    parser.add_argument("--summary", metavar="ROWS", help="print the summary of rows saved earlier (JSON lines) and stop")
    args = parser.parse_args(argv)
    if args.summary:
        try:
            with open(args.summary) as rows:
                print(summary([json.loads(line) for line in rows if line.strip()]))
        except (OSError, ValueError) as err:
            parser.error(f"--summary {args.summary}: {err}")  # one line, exit 2
        return 0
    settings = QUICK if args.quick else FULL
    if args.task:
        settings = replace(settings, tasks=tuple(args.task))
    rows = run(quick=args.quick, settings=settings)
    for r in rows:
        print(json.dumps(r, default=str))
    print(summary(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
