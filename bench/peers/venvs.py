"""The peers' own venvs (``make peers``) and running a peer's worker in one: the project's source
on PYTHONPATH, a request file in, one line of JSON out."""
from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .worker import MARKER

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".venv-peers"


@dataclass(frozen=True)
class Peer:
    arm: str  # the name the section's rows carry
    venv: str  # under .venv-peers/
    module: str  # the worker, run as python -m

    def python(self, venvs: Path | None = None) -> Path:
        return (venvs or VENVS) / self.venv / "bin" / "python"


PEERS = (Peer("nncf-hawq", "nncf", "bench.peers.nncf_worker"),
         Peer("modelopt-autoquant", "modelopt", "bench.peers.modelopt_worker"))


def available(peers=PEERS, venvs: Path | None = None) -> tuple[list[Peer], list[Peer]]:
    """The peers whose venv exists, and those whose venv is missing."""
    have = [p for p in peers if p.python(venvs).is_file()]
    return have, [p for p in peers if p not in have]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["NNCF_TORCH_LEGACY_TRACING"] = "1"  # NNCF 2.19.0 wraps no operators without it
    # NNCF compiles a CPU extension on first use; its 60 s limit fails on a busy machine, and the build
    # it abandons leaves a lock that hangs the next run
    env.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")
    return env


def parse(stdout: str) -> dict:
    """The worker's result: its last line that starts with the marker."""
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise ValueError("the worker printed no result line")
    return json.loads(lines[-1][len(MARKER):])


def run_worker(peer: Peer, request: Path, *, timeout: float, venvs: Path | None = None) -> dict:
    """Run ``peer``'s worker on ``request``; its result with ``wall_s`` (imports included) added.
    RuntimeError with the end of its output when it fails."""
    request = Path(request).resolve()
    start = time.perf_counter()
    # in the request's (temporary) folder: NNCF writes its graphs and chosen bit-widths where it runs
    done = subprocess.run([str(peer.python(venvs)), "-m", peer.module, str(request)], cwd=request.parent, env=_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{peer.arm} worker exited {done.returncode}: {' | '.join(tail)}")
    return {**parse(done.stdout), "wall_s": round(time.perf_counter() - start, 1)}
