"""A search in which every trial fails is a failure (exit status 1, one line naming the first
error), and what trials warn about reaches the driver's console."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import short_ray_tmp, write_tiny_config


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_exits_1_and_shows_the_workers_warnings(tmp_path):
    path = write_tiny_config(tmp_path, search={"max_failures": 0})
    # a compiler that fails: every process that runs LSQ warns that it falls back to torch ops;
    # a NaN weight fails a trial after its first forward pass, so after that warning
    env = {**os.environ, "RAY_TMPDIR": short_ray_tmp(), "MQAT_INJECT_FAULTS": "1:nan,2:nan",
           "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions"), "CXX": "/bin/false"}
    result = subprocess.run([sys.executable, "-m", "search.cli", "search", "--config", str(path)],
                            env=env, check=False, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    (tmp_path / "output.txt").write_text(output)
    assert result.returncode == 1, result.stderr[-3000:]
    # workers' lines stream in on their own schedule, so mqat's own line need not be the last
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("mqat: ")]
    assert line.startswith("mqat: failed: all 2 trials failed; the first with: ") and \
        "training loss became nan" in line, line
    workers = [line for line in output.splitlines() if "pid=" in line and "could not be built" in line]
    assert workers, output[-3000:]  # Ray prefixes a worker's lines with its process
