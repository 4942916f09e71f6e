import optuna
import pytest

import mqat
from spaces import (
    SpaceConfig,
    define_space,
    ilp_space,
    ilp_targets,
    recommended_order,
    seed_points,
    trial_settings,
    uniform_space,
)

MODULES = ("backbone", "fpn", "head")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sample(space_fn, n=60):
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(n):
        trial = study.ask()
        fixed = space_fn(trial)
        yield {**trial.params, **fixed}


@pytest.mark.parametrize("space", [
    SpaceConfig(modules=MODULES),
    SpaceConfig(modules=MODULES, order=["head", "fpn", "backbone"], ema=True, qc=False,
                act_bits=[4, 8], epochs_per_stage=[1, 2]),
])
def test_every_configuration_the_space_yields_is_valid(space):
    orders = set()
    for config in _sample(lambda t: define_space(t, space)):
        settings = trial_settings(config, MODULES)
        assert sorted(settings.order) == sorted(MODULES)
        assert set(settings.plan.weight_bits.values()) <= set(space.weight_bits)
        assert space.lr[0] <= settings.lr <= space.lr[1]
        if settings.ema:
            assert space.ema_decay[0] <= settings.ema.decay <= space.ema_decay[1]
        if settings.qc:
            assert space.qc_lr[0] <= settings.qc.lr <= space.qc_lr[1]
        assert ("ema_decay" in config) == bool(config["ema"])   # conditional parameters
        orders.add(config["order"])
    assert len(orders) == (6 if space.order == "search" else 1)


def test_seeds_map_exactly_onto_space_parameters():
    space = SpaceConfig(modules=MODULES)
    plans = {4.0: mqat.BitPlan({"backbone": 8, "fpn": 8, "head": 8}),
             8.0: mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 4}),
             12.0: mqat.BitPlan({"backbone": 3, "fpn": 2, "head": 2})}
    points = seed_points(plans, space)
    assert len(points) == 3
    for point, plan in zip(points, plans.values()):
        trial = optuna.trial.FixedTrial(point)      # raises if the space asks for a missing key
        fixed = define_space(trial, space)
        assert trial.params == point                # every seed key is a parameter of the space
        settings = trial_settings({**point, **fixed}, MODULES)
        assert settings.plan == plan
        assert settings.order == ["fpn", "head", "backbone"]
        assert settings.ema is None and settings.qc is None and settings.bn  # SEED_SWITCHES


def test_seeds_skip_parameters_that_are_fixed():
    space = SpaceConfig(modules=MODULES, order=["backbone", "head", "fpn"], ema=False, qc=True)
    (point,) = seed_points({8.0: mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 4})}, space)
    assert "order" not in point and "ema" not in point and "ema_decay" not in point and "qc" not in point
    trial = optuna.trial.FixedTrial(point)
    fixed = define_space(trial, space)
    assert trial.params == point and fixed["order"] == "backbone>head>fpn" and fixed["qc"] is True


def test_baseline_spaces():
    space = SpaceConfig(modules=MODULES)
    for config in _sample(lambda t: uniform_space(t, space), n=20):
        settings = trial_settings(config, MODULES)
        assert settings.order is None and settings.ema is None and settings.qc is None
        assert len(set(settings.plan.weight_bits.values())) == 1
    plans = {"4x": {"backbone": 8, "fpn": 8, "head": 8}, "8x": {"backbone": 4, "fpn": 4, "head": 4}}
    for config in _sample(lambda t: ilp_space(t, space, plans), n=10):
        settings = trial_settings(config, MODULES)
        assert dict(settings.plan.weight_bits) in plans.values() and settings.order is None
    assert ilp_targets(4, 16, 3) == [4.0, 8.0, 16.0]


def test_recommended_order_puts_fpn_head_backbone_first():
    assert recommended_order(["backbone", "fpn", "head", "extra"]) == ["fpn", "head", "backbone", "extra"]


@pytest.mark.parametrize("kwargs, match", [
    ({"order": ["fpn", "head", "neck"]}, r"\['neck'\], which are not modules"),
    ({"order": ["fpn", "fpn", "backbone", "head"]}, r"repeats module\(s\) \['fpn'\]"),
    ({"order": ["fpn", "head"]}, r"lacks \['backbone'\]"),
    ({"weight_bits": [2, 9]}, r"weight_bits must be a list of bits"),
    ({"weight_bits": [1]}, r"weight_bits"),
    ({"ema": "maybe"}, r"space.ema must be 'search', true or false"),
    ({"lr": [0.1, 0.01]}, r"space.lr must satisfy"),
    ({"epochs_per_stage": 0}, r"epochs_per_stage"),
])
def test_bad_space_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpaceConfig(modules=MODULES, **kwargs)


def test_seed_order_puts_the_module_the_plan_hurts_most_first():
    table = mqat.SensitivityTable(1.0, {"backbone": {2: 2.5, 4: 0.8, 8: 0.0},
                                        "fpn": {2: 0.8, 4: 0.01, 8: 0.0},
                                        "head": {2: 0.6, 4: 0.03, 8: 0.0}})
    space = SpaceConfig(modules=("backbone", "fpn", "head"))
    plans = {8.0: mqat.BitPlan({"backbone": 4, "fpn": 4, "head": 4}),
             12.0: mqat.BitPlan({"backbone": 8, "fpn": 2, "head": 4})}
    first, second = seed_points(plans, space, table)
    assert first["order"].split(">") == ["backbone", "head", "fpn"]
    assert second["order"].split(">") == ["fpn", "head", "backbone"]
    (without,) = seed_points({8.0: plans[8.0]}, space)
    assert without["order"].split(">") == recommended_order(space.modules)


def test_every_trial_gets_its_own_seed_from_the_search_seed():
    import functools

    from spaces import with_trial_seed

    space = SpaceConfig(modules=MODULES)
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seeded = functools.partial(with_trial_seed, space_function=functools.partial(define_space, space=space),
                               seed=7)
    seeds = []
    for _ in range(4):
        trial = study.ask()
        fixed = seeded(trial)
        config = {**trial.params, **fixed}
        seeds.append(config["seed"])
        assert trial_settings(config, MODULES).seed == config["seed"]
    assert len(set(seeds)) == 4
    again = optuna.create_study(directions=["maximize", "maximize"])
    assert seeded(again.ask())["seed"] == seeds[0]  # the same number gives the same seed
    other = functools.partial(with_trial_seed, space_function=lambda t: {}, seed=8)
    assert other(again.ask())["seed"] != seeds[1]


def test_bn_reestimation_is_a_switch_the_seeds_turn_on():
    space = SpaceConfig(modules=MODULES)
    (point,) = seed_points({8.0: mqat.BitPlan({"backbone": 4, "fpn": 4, "head": 4})}, space)
    assert point["bn"] is True
    configs = _sample(lambda t: define_space(t, space), n=30)
    assert {c["bn"] for c in configs} == {True, False}
    fixed = SpaceConfig(modules=MODULES, bn=False)
    assert all(trial_settings(c, MODULES).bn is False for c in _sample(lambda t: define_space(t, fixed), n=5))
    with pytest.raises(ValueError, match="space.bn must be"):
        SpaceConfig(modules=MODULES, bn="sometimes")


def test_the_joint_flow_is_one_of_the_searched_orders_when_asked():
    space = SpaceConfig(modules=MODULES, joint=True)
    assert space.orders()[-1] == "uniform" and len(space.orders()) == 7
    assert "uniform" not in SpaceConfig(modules=MODULES).orders()
    orders = {config["order"]: trial_settings(config, MODULES).order for config in _sample(
        lambda t: define_space(t, space), n=80)}
    assert orders["uniform"] is None and len(orders) == 7          # the joint flow: every module at once
    with pytest.raises(ValueError, match="space.joint adds the joint flow"):
        SpaceConfig(modules=MODULES, order=["head", "fpn", "backbone"], joint=True)
    with pytest.raises(ValueError, match="space.joint must be true or false"):
        SpaceConfig(modules=MODULES, joint="yes")


def test_a_seed_points_learning_rate_lies_within_a_range_of_one_value():
    """exp and log round: the middle of [1e-4, 1e-4] came out 1.0000000000000009e-4, outside the
    range, and Optuna warned on every seed of the recorded table's replay."""
    import mqat
    from spaces import SpaceConfig, seed_point

    space = SpaceConfig(modules=("a", "b"), lr=(1e-4, 1e-4))
    point = seed_point(mqat.BitPlan({"a": 4, "b": 8}), space)
    assert 1e-4 <= point["lr"] <= 1e-4
