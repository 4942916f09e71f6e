"""``python -m bench.peers [--quick]``: the peers section alone, its rows printed as JSON lines
(``python -m bench --only peers`` runs it among the others and writes bench/results.json)."""
from __future__ import annotations

import argparse
import json

from . import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the tiny pose task only, one seed (minutes)")
    args = parser.parse_args(argv)
    for r in run(quick=args.quick):
        print(json.dumps(r, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
