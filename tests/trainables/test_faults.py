"""Fault injection: the spec is parsed strictly, and each kind fails for real."""
import math

import pytest
import torch
from torch import nn

from trainables.faults import fault_for, parse_faults, trial_number, with_fault


def test_parse_faults_reads_trial_numbers_and_kinds():
    assert parse_faults("1:nan, 3:oom,4:error,") == {1: "nan", 3: "oom", 4: "error"}
    assert parse_faults("") == {} and parse_faults(None) == {}


@pytest.mark.parametrize("text", ["1:segfault", "x:nan", "1nan", ":nan"])
def test_parse_faults_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="MQAT_INJECT_FAULTS"):
        parse_faults(text)


def test_trial_number_is_the_counter_after_the_id():
    name = "train_mqat_3f2a_12_act_bits=8,lr=0.1_2026-11-22_04-36-46"
    assert trial_number(name, "3f2a") == 12
    assert trial_number(name, "other") is None
    assert fault_for({12: "oom"}, name, "3f2a") == "oom" and fault_for({1: "oom"}, name, "3f2a") is None


def _epoch(model, optimizer, on_step):
    x = torch.randn(4, 3)
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_each_fault_fails_the_epoch_for_real():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert math.isfinite(with_fault(_epoch, None)(model, optimizer, None))
    assert math.isnan(with_fault(_epoch, "nan")(model, optimizer, None))
    with pytest.raises(RuntimeError, match="allocate"):
        with_fault(_epoch, "oom")(model, optimizer, None)
    with pytest.raises(RuntimeError, match="injected fault"):
        with_fault(_epoch, "error")(model, optimizer, None)


KILL_SCRIPT = """
import sys
from trainables.faults import with_fault
reported = []
epoch = with_fault(lambda *_: print("epoch", flush=True), "kill", resumed=sys.argv[1] == "resumed",
                   checkpointed=lambda: bool(reported))
for stage in range(3):
    epoch(None, None, None)
    reported.append(stage)  # the stage's checkpoint is reported after its epoch
print("done", flush=True)
"""


@pytest.mark.parametrize("run", ["fresh", "resumed"])
def test_kill_dies_by_sigkill_after_the_first_checkpoint_unless_resumed(run):
    import signal
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, run], check=False, capture_output=True, text=True, timeout=60)
    if run == "fresh":  # one epoch ran, its checkpoint was reported, the next epoch died
        assert result.returncode == -signal.SIGKILL and result.stdout.split() == ["epoch"], result
    else:
        assert result.returncode == 0 and result.stdout.split() == ["epoch"] * 3 + ["done"], result
