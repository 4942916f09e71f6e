"""The bench's interleaved timing: the order candidates run in, and what is timed."""
from bench.timing import interleaved


def _recording(calls, name):
    return lambda: calls.append(name)


def test_candidates_run_in_turn_and_a_burst_starts_with_an_untimed_call():
    calls = []
    interleaved({"a": _recording(calls, "a"), "b": _recording(calls, "b")}, rounds=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 2

    calls.clear()
    times = interleaved({"a": _recording(calls, "a"), "b": _recording(calls, "b")}, rounds=2, warmup=0, burst=3)
    assert calls == (["a"] * 4 + ["b"] * 4) * 2                # one untimed call, then three timed
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
