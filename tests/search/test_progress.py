import pickle
from types import SimpleNamespace

from search.progress import ProgressPrinter


def _trial(trial_id, status, accuracy=None):
    result = {"accuracy": accuracy, "compression": 8.0} if accuracy is not None else {}
    return SimpleNamespace(trial_id=trial_id, status=status, last_result=result, config={},
                           get_error=lambda: "RuntimeError: boom", error_file=None)


def test_a_resumed_printer_counts_the_trials_that_ended_before():
    lines = []
    pickled = pickle.dumps(ProgressPrinter(total=4, log=print))  # as Tune keeps it, at the start
    printer = pickle.loads(pickled)
    printer.log = lines.append
    ended = [_trial("a", "TERMINATED", 0.5), _trial("b", "ERROR")]
    new = _trial("c", "RUNNING")
    printer.on_trial_start(0, ended + [new], new)
    assert lines[-1].startswith("[2/4 done, 1 running, 1 failed")
    new.last_result, new.status = {"accuracy": 0.6, "compression": 4.0}, "TERMINATED"
    printer.on_trial_complete(0, ended + [new], new)
    assert lines[-1].startswith("[3/4 done, 0 running, 1 failed") and "8.0x:0.500" in lines[-1]


def test_a_new_search_counts_from_zero():
    lines = []
    printer = ProgressPrinter(total=2, log=lines.append)
    first = _trial("a", "PENDING")
    printer.on_trial_start(0, [first], first)
    assert lines[-1].startswith("[0/2 done")


def test_lines_name_the_tasks_metric_and_the_plan_in_the_networks_module_order():
    lines = []
    printer = ProgressPrinter(total=1, log=lines.append, metric_name="mAP", modules=["backbone", "neck", "head"])
    trial = _trial("a", "RUNNING")
    trial.config = {"order": "neck>head>backbone", "bits_backbone": 8, "bits_head": 4, "bits_neck": 2, "bn": True}
    printer.on_trial_start(0, [trial], trial)
    assert lines[-1].endswith("started a: neck>head>backbone W[8-2-4] bn")
    trial.last_result, trial.status = {"accuracy": 0.6, "compression": 4.0}, "TERMINATED"
    printer.on_trial_complete(0, [trial], trial)
    assert " a: mAP 0.600 at 4.00x" in lines[-1]
