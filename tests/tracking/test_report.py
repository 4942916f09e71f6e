"""A trial's reports read back from Tune's ``result.json``, the durable record MLflow is
backfilled from."""
import json

from tracking.report import reports


def test_reports_are_read_in_order_and_a_half_written_last_line_is_not_one(tmp_path):
    lines = [json.dumps({"stage": k, "accuracy": 0.1 * k}) for k in range(3)]
    (tmp_path / "result.json").write_text("\n".join(lines) + "\n" + lines[0][:9])  # a driver killed mid-write
    assert [r["stage"] for r in reports(tmp_path)] == [0, 1, 2]


def test_a_trial_that_never_reported_has_no_reports(tmp_path):
    assert reports(tmp_path) == []
