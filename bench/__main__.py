"""``python -m bench [--quick] [--only kernel,step,...]``: every benchmark, as ratios to a
baseline measured in the same run; writes ``bench/results.json`` and prints the table."""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

SECTIONS = ("kernel", "step", "deploy", "scaling", "orchestration", "quality", "fidelity", "fidelity-shared",
            "fidelity-detect", "fidelity-yolo", "scale", "chaos", "peers")
RESULTS = Path(__file__).resolve().parent / "results.json"


def _format(rows: list[dict]) -> str:
    lines = [f"{'section':<15} {'what':<62} {'value':>10} {'ratio':>8}  goal"]
    for r in rows:
        value = r["value"]
        shown = "" if value is None else (f"{value * 1e3:.2f} ms" if r["section"] in ("kernel", "qat step")
                                          else f"{value:.3f}" if r["section"] == "deploy" else f"{value:.4g}")
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}x" if r["section"] != "orchestration" \
            else f"{r['ratio']:.1%}"
        goal = f"{r['goal']}: {'met' if r['met'] else 'MISSED'}" if r.get("goal") else (r.get("note") or "")
        extra = f" ({r['numerics']})" if r.get("numerics") else ""
        extra += f" spread {r['spread']:.3f}" if r.get("spread") is not None else ""
        lines.append(f"{r['section']:<15} {r['what']:<62} {shown:>10} {ratio:>8}  {goal}{extra}")
    return "\n".join(lines)


def _merged(results: dict, path: Path) -> dict:
    """With ``--only``, the other sections' rows of an earlier run of the same mode are kept."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    if earlier.get("quick") != results["quick"]:
        return results
    ran = {row["section"] for row in results["rows"]}
    kept = [row for row in earlier.get("rows", []) if row["section"] not in ran]
    return {**results, "seconds": {**earlier.get("seconds", {}), **results["seconds"]},
            "rows": kept + results["rows"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and the tiny task (minutes)")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads for the kernel and step timings (default 2)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")

    import torch

    from search import ray_env

    ray_env.apply()  # Ray's environment before any section starts Ray

    torch.set_num_threads(args.threads)
    from importlib import import_module

    rows, seconds = [], {}
    for name in (s for s in SECTIONS if s in chosen):
        start = time.perf_counter()
        section = import_module(f"bench.{name.replace('-', '_')}")
        rows += section.run(quick=args.quick)
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[bench] {name}: {seconds[name]} s", flush=True)
    results = {"quick": args.quick, "machine": {"cpus": os.cpu_count(), "threads": args.threads,
                                                "platform": platform.platform(), "torch": torch.__version__,
                                                "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
               "seconds": seconds, "rows": rows}
    if args.only:
        results = _merged(results, args.output)
    args.output.write_text(json.dumps(results, indent=1, default=str))
    print(_format(rows))
    if args.quick:
        print("quick mode: every section on tiny sizes (an untrained tiny task, seconds-long trials), "
              "to check the bench runs; judge the goals on a full run")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
