"""Two searches in one process, the second with a task module of its own (a notebook, or the
bench's sections one after another): the second's workers must import that module. Run in a
process of its own, so that this session's Ray is left alone."""
from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import ray
from search.ray_env import init_ray

@ray.remote(num_cpus=0)
def answer():
    import my_second_task
    return my_second_task.ANSWER

init_ray(None, num_cpus=1)                                # the first search: nothing shipped
init_ray(None, num_cpus=1, py_modules=[sys.argv[1]])      # the second: its own task module
print(ray.get(answer.remote(), timeout=120))
init_ray(None, num_cpus=1, py_modules=[sys.argv[1]])      # the same again: Ray kept as it is
print(ray.get(answer.remote(), timeout=120))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_second_search_in_the_process_ships_its_own_task_module(tmp_path):
    module = tmp_path / "my_second_task.py"
    module.write_text("ANSWER = 42\n")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(module)], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["42", "42"]
