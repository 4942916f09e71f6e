"""Property: any malformed config is either accepted or refused with one line and exit status 2,
never a traceback, and nothing is written (``mqat search --check`` runs every check a search
runs before it writes or starts anything)."""
from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.cli import main
from tests.integration.conftest import TINY

SECTIONS = ["task", "pretrain", "search", "space", "tracking"]
KEYS = {"task": ["name", "source", "train_images", "val_images", "test_images", "image_size", "occlusion", "bop_path",
                 "bop_object_id", "keypoints", "keypoint_kind", "widths", "depth", "fpn_channels",
                 "batch_size", "pnp", "pnp_threshold", "seed"],
        "pretrain": ["epochs", "lr", "weight_decay", "checkpoint", "seed"],
        "search": ["method", "num_samples", "budget_trials", "max_concurrent", "sampler", "seed", "targets",
                   "resources", "storage", "stage", "deploy", "scheduler", "max_failures",
                   "sensitivity_batches", "reuse_actors", "pending_timeout_s", "images_per_epoch"],
        "space": ["modules", "order", "weight_bits", "act_bits", "ema", "ema_decay", "qc", "qc_lr", "bn", "lr",
                  "epochs_per_stage"],
        "tracking": ["enabled", "uri", "experiment"]}

values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(-2**40, 2**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-3, 40), max_size=5), st.lists(st.text(max_size=6), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "section", "top"]))
    section = draw(st.sampled_from(SECTIONS))
    key = draw(st.sampled_from(KEYS[section]))
    return kind, section, key, draw(values)


def _apply(config: dict, kind: str, section: str, key: str, value) -> dict:
    if kind == "top":  # a scalar replaces the whole config; a mapping is merged into it
        return value if not isinstance(value, dict) else {**(config if isinstance(config, dict) else {}), **value}
    if not isinstance(config, dict):
        return config
    part = config.get(section)
    part = dict(part) if isinstance(part, dict) else {}
    if kind == "section":
        return {**config, section: value}
    if kind == "delete":
        part.pop(key, None)
    elif kind == "unknown":
        part[f"{key}_x"] = value
    else:
        part[key] = value
    return {**config, section: part}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation(), min_size=1, max_size=3))
def test_malformed_configs_are_accepted_or_refused_in_one_line(mutations):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config: object = {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()},
                          "cache_dir": str(root / "cache"), "output_dir": str(root / "out")}
        for m in mutations:
            config = _apply(config, *m)
        path = root / "config.yaml"
        text = yaml.safe_dump(config) if not (isinstance(config, float) and math.isnan(config)) else ".nan"
        path.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["search", "--config", str(path), "--check", "--quiet"])
        lines = err.getvalue().strip().splitlines()
        if code == 0:
            assert "valid" in out.getvalue() and not lines
        else:
            assert code == 2, (code, err.getvalue())
            assert len(lines) == 1 and lines[0].startswith("mqat: error: "), err.getvalue()
            assert "Traceback" not in err.getvalue()
        assert sorted(p.name for p in root.iterdir()) == ["config.yaml"]   # nothing written
