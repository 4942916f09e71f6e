"""The YOLO fidelity section: every arm's models scored per seed and every claim judged, or one
skipped row where the optional extra is missing (a full bench goes on)."""
from __future__ import annotations

import importlib.util

import pytest

from bench import fidelity_yolo


@pytest.mark.slow
def test_the_qc_claims_are_judged_on_a_tiny_yolo_from_paired_runs():
    rows = fidelity_yolo.run(quick=True)
    by_what = {r["what"]: r for r in rows}
    for model in ("LSQ", "EMA", "BN", "EMA+BN", "QC", "EMA+QC"):
        values = by_what[f"4-4-4 joint: {model}"]["values"]
        assert len(values) == 2 and all(0 <= v <= 1 for v in values)      # two seeds in quick mode
    claims = [r for r in rows if r["what"].startswith("claim: ")]
    assert [r["what"] for r in claims] == [f"claim: {c[0]}" for c in fidelity_yolo.CLAIMS]
    assert {r["note"] for r in claims} <= {"reproduced", "not reproduced", "within noise"}


def test_without_the_extra_the_section_is_one_skipped_row(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ultralytics" else real(name, *a))
    assert fidelity_yolo.run(quick=True) == [{"section": "fidelity-yolo", "what": "skipped", "value": None,
                                              "baseline": None, "ratio": None, "goal": None, "met": None,
                                              "note": "needs the yolo extra: pip install -e '.[yolo]'"}]
