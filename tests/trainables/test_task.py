import torch

import mqat
from trainables.pretrain import PretrainConfig, load_state_dict, pretrain
from trainables.tasks import get_task, task_names


def test_two_epochs_on_a_tiny_rendered_set_lower_the_loss(tiny_task):
    torch.manual_seed(0)
    model = tiny_task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = []
    losses = []
    for _ in range(3):
        model.train()
        losses.append(tiny_task.train_epoch(model, optimizer, lambda: steps.append(1)))
    assert losses[-1] < losses[0]
    assert len(steps) == 3 * tiny_task.steps_per_epoch()


def test_module_map_covers_the_network(tiny_task):
    model = tiny_task.build_model()
    layers = tiny_task.module_map.layers(model)
    assert set(layers) == {"backbone", "fpn", "head"} and all(layers.values())


def test_evaluate_reports_add_and_companions(tiny_task):
    metrics = tiny_task.evaluate(tiny_task.build_model())
    for key in ("accuracy", "add_01d_se", "adds_01d", "add_auc", "rot_err_deg_median",
                "trans_err_cm_median", "kp_err_px", "add_01d_near"):
        assert key in metrics
    assert metrics["images"] == 32


def test_sensitivity_batches_feed_mqat_sensitivity(tiny_task):
    model = tiny_task.build_model()
    table = mqat.sensitivity(model, tiny_task.module_map, loss_fn=tiny_task.loss_fn,
                             batches=tiny_task.sensitivity_batches(1), bits=(2, 8))
    assert set(table.delta) == {"backbone", "fpn", "head"}


def test_data_are_cached_by_content(tiny_task):
    first = tiny_task.train_data
    again = type(tiny_task)(tiny_task.config, cache_dir=tiny_task.cache_dir, device="cpu",
                            progress=False).train_data
    assert torch.equal(first.images, again.images) and torch.equal(first.R, again.R)


def test_pretrain_is_cached_and_loads_safely(tiny_task, tmp_path):
    config = PretrainConfig(epochs=1, lr=1e-3)
    first = pretrain(tiny_task, config, cache_dir=tmp_path, progress=False)
    assert not first.cached and first.checkpoint.is_file()
    assert {"accuracy", "train_seconds", "baseline_accuracy"} <= set(first.metrics)
    second = pretrain(tiny_task, config, cache_dir=tmp_path, progress=False)
    assert second.cached and second.checkpoint == first.checkpoint
    state = load_state_dict(first.checkpoint)
    tiny_task.build_model().load_state_dict(state)


def test_registry_names_tasks():
    assert task_names() == ["classify", "detect", "pose", "yolo"]
    import pytest
    with pytest.raises(ValueError, match=r"unknown task 'segmentation'.*\['classify', 'detect', 'pose', 'yolo'\]"):
        get_task("segmentation")


def test_validation_and_test_splits_are_disjoint_and_scored_apart(tiny_task):
    import pytest

    val, test = tiny_task.data("val"), tiny_task.data("test")
    assert len(test) == 32 and not torch.equal(val.R, test.R)
    model = tiny_task.build_model()
    assert tiny_task.evaluate(model, split="test")["images"] == 32
    with pytest.raises(ValueError, match="split must be one of"):
        tiny_task.evaluate(model, split="train")


def test_pretraining_is_fixed_by_its_seed(tiny_task):
    from trainables.pretrain import train_fp

    def trained(seed):
        torch.manual_seed(1000 + seed)  # whatever ran before must not matter
        model, _ = train_fp(tiny_task, PretrainConfig(epochs=1, lr=1e-3, seed=seed), progress=False)
        return model.state_dict()

    first, again, other = trained(0), trained(0), trained(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
