import itertools
import random

import pytest

import mqat

CHOICES = (2, 3, 4, 6, 8)


def _brute_force(table, counts, target, choices):
    """Least summed sensitivity over every plan that meets the target (None if none does)."""
    best = None
    total = sum(counts.values())
    for bits in itertools.product(choices, repeat=len(counts)):
        size = sum(b * counts[m] for b, m in zip(bits, counts))
        if 32 * total / size < target * (1 - 1e-9):
            continue
        cost = sum(table[m][b] for b, m in zip(bits, counts))
        best = cost if best is None or cost < best else best
    return best


def _random_instance(rng, n_modules):
    modules = [f"m{i}" for i in range(n_modules)]
    counts = {m: rng.randint(100, 100_000) for m in modules}
    table = {}
    for m in modules:
        # sensitivities fall with bits, as measured ones usually do, but not always strictly
        values = sorted((rng.random() * 3 for _ in CHOICES), reverse=True)
        table[m] = dict(zip(CHOICES, values))
    return table, counts


@pytest.mark.parametrize("seed", range(40))
def test_plan_equals_brute_force_optimum_and_honours_budget(seed):
    rng = random.Random(seed)
    table, counts = _random_instance(rng, rng.randint(2, 4))
    target = rng.uniform(4.0, 16.0)
    plan = mqat.solve_bit_plan(table, counts, target_compression=target, choices=CHOICES)
    bits = plan.weight_bits
    total = sum(counts.values())
    compression = 32 * total / sum(bits[m] * counts[m] for m in counts)
    assert compression >= target * (1 - 1e-9)
    cost = sum(table[m][bits[m]] for m in counts)
    assert cost == pytest.approx(_brute_force(table, counts, target, CHOICES))


def test_unreachable_target_states_the_maximum():
    table, counts = _random_instance(random.Random(1), 3)
    with pytest.raises(ValueError, match=r"unreachable.*highest reachable.*16\.000x"):
        mqat.solve_bit_plan(table, counts, target_compression=17, choices=CHOICES)
    assert mqat.max_compression(counts, CHOICES) == pytest.approx(16.0)


def test_max_compression_is_reachable_exactly():
    table, counts = _random_instance(random.Random(2), 3)
    plan = mqat.solve_bit_plan(table, counts, target_compression=16.0, choices=CHOICES)
    assert set(plan.weight_bits.values()) == {2}


def test_full_precision_weights_outside_the_plan_count():
    table, counts = _random_instance(random.Random(3), 2)
    fp = sum(counts.values())  # as many fixed FP weights as planned ones
    top = mqat.max_compression(counts, CHOICES, fp_weights=fp)
    assert top == pytest.approx(32 * 2 / (2 + 32))
    with pytest.raises(ValueError, match="unreachable"):
        mqat.solve_bit_plan(table, counts, target_compression=2.0, choices=CHOICES, fp_weights=fp)


def test_ties_force_equal_bits():
    table = {"a": {2: 0.0, 8: 1.0}, "b": {2: 5.0, 8: 0.0}}
    counts = {"a": 1000, "b": 1000}
    free = mqat.solve_bit_plan(table, counts, target_compression=6.4, choices=(2, 8))
    assert dict(free.weight_bits) == {"a": 2, "b": 8}
    tied = mqat.solve_bit_plan(table, counts, target_compression=3.9, choices=(2, 8), ties=[["a", "b"]])
    assert tied.weight_bits["a"] == tied.weight_bits["b"] == 8


def test_several_targets_give_more_compressed_plans():
    table, counts = _random_instance(random.Random(4), 3)
    plans = mqat.solve_bit_plans(table, counts, targets=[4, 8, 12], choices=CHOICES, act_bits=6)
    assert list(plans) == [4, 8, 12]
    sizes = [sum(p.weight_bits[m] * counts[m] for m in counts) for p in plans.values()]
    assert sizes == sorted(sizes, reverse=True)
    assert all(p.act_bits == 6 for p in plans.values())


@pytest.mark.parametrize("bad, match", [
    ({"target_compression": 0.5}, "target_compression"),
    ({"target_compression": 4, "choices": (1, 4)}, "1"),
    ({"target_compression": 4, "choices": (4, 5)}, r"not measured at bits \[5\]"),
])
def test_bad_inputs(bad, match):
    table, counts = _random_instance(random.Random(5), 2)
    with pytest.raises(ValueError, match=match):
        mqat.solve_bit_plan(table, counts, **bad)


def test_accepts_a_sensitivity_table():
    table = mqat.SensitivityTable(0.1, {"a": {2: 1.0, 4: 0.1}, "b": {2: 0.01, 4: 0.0}})
    plan = mqat.solve_bit_plan(table, {"a": 10, "b": 10}, target_compression=32 / 3, choices=(2, 4))
    assert dict(plan.weight_bits) == {"a": 4, "b": 2}
