"""No module of the project changes the process' environment when imported: Ray's settings are
applied when a search starts Ray (``search.ray_env.apply``), not as a side effect of an import."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mqat", "spaces", "search", "tracking", "trainables", "bench")

SCRIPT = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
imported = []
for package in sys.argv[1:]:
    module = importlib.import_module(package)
    imported.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
            imported.append(info.name)
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"imported": imported, "changed": changed}))
"""


def _without_ray_settings() -> dict[str, str]:
    """This process' environment less what ``ray_env.apply`` sets (the test session applied it)."""
    from search.ray_env import DEFAULTS

    return {k: v for k, v in os.environ.items() if k not in {*DEFAULTS, "RAY_AUTH_MODE"}}


def test_importing_every_module_leaves_the_environment_alone():
    done = subprocess.run([sys.executable, "-c", SCRIPT, *PACKAGES], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True, env=_without_ray_settings())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"search.run", "search.ray_env", "search.parts", "tracking.objectives"} <= set(result["imported"])
    assert result["changed"] == []


def test_applying_ray_env_sets_its_defaults_and_keeps_the_users():
    script = ("import json, os; os.environ['TUNE_GLOBAL_CHECKPOINT_S'] = '60'; "
              "from search import ray_env; ray_env.apply(); "
              "print(json.dumps({k: os.environ.get(k) for k in ('TUNE_GLOBAL_CHECKPOINT_S', "
              "'RAY_USAGE_STATS_ENABLED', 'RAY_AUTH_MODE')}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True, env=_without_ray_settings())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "TUNE_GLOBAL_CHECKPOINT_S": "60", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
