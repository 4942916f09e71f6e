"""The detection task: scenes, targets, NMS, COCO mAP (pycocotools), and a few training steps."""
import pytest
import torch

from trainables.detect import DetectConfig, DetectTask
from trainables.detect.boxes import assign, decode, nms
from trainables.detect.metrics import coco_map
from trainables.detect.network import STRIDES
from trainables.detect.scenes import SceneSpec, render_scenes


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    config = DetectConfig(train_images=64, val_images=32, test_images=32, widths=(8, 8, 16, 16, 16),
                          neck_channels=16, batch_size=16, bootstrap=5)
    return DetectTask(config, cache_dir=tmp_path_factory.mktemp("cache"), device="cpu", progress=False)


def test_scenes_are_determined_by_their_seed_and_boxes_lie_in_the_image():
    a, b = render_scenes(SceneSpec(12, seed=4), progress=False), render_scenes(SceneSpec(12, seed=4), progress=False)
    other = render_scenes(SceneSpec(12, seed=5), progress=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, other.images)
    counts = (a.labels >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 6
    boxes = a.boxes[a.labels >= 0]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def test_each_object_is_learnt_by_the_cell_at_its_centre_on_its_level():
    boxes = torch.tensor([[10.0, 10.0, 20.0, 20.0], [30.0, 40.0, 80.0, 90.0]])
    targets = assign(boxes, torch.tensor([2, 0]), 96)
    cls8, box8 = targets[0]   # the 10-pixel object: stride 8
    assert cls8[1, 1] == 2 and torch.equal(box8[:, 1, 1], boxes[0]) and (cls8 >= 0).sum() <= 9
    cls32, box32 = targets[2]  # the 50-pixel object: stride 32
    assert cls32[2, 1] == 0 and torch.equal(box32[:, 2, 1], boxes[1])
    assert (targets[1][0] == -1).all()


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    kept = nms(boxes, torch.tensor([0.5, 0.9, 0.3]), 0.5)
    assert kept.tolist() == [1, 2]


def test_coco_map_from_pycocotools_rewards_exact_boxes_and_reports_a_spread():
    truth = [(torch.tensor([[10.0, 10, 40, 40], [50, 50, 70, 80]]), torch.tensor([0, 1])) for _ in range(10)]
    exact = [(b, torch.ones(len(b)), c) for b, c in truth]
    perfect = coco_map(truth, exact, classes=3, size=96, bootstrap=10)
    assert perfect["accuracy"] == pytest.approx(1.0) and perfect["map_50"] == pytest.approx(1.0)
    assert perfect["accuracy_se"] == pytest.approx(0.0)
    shifted = [(b + (3.0 if i % 2 else 0.0), s, c) for i, (b, s, c) in enumerate(exact)]
    worse = coco_map(truth, shifted, classes=3, size=96, bootstrap=10)
    assert worse["accuracy"] < 0.9 and worse["accuracy_se"] > 0
    empty = coco_map(truth, [(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))] * 10,
                     classes=3, size=96)
    assert empty["accuracy"] == 0.0


def test_training_lowers_the_loss_and_evaluation_reports_the_described_metric(task):
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [task.train_epoch(model, optimizer, lambda: None) for _ in range(4)]
    assert losses[-1] < losses[0]
    metrics = task.evaluate(model)
    assert {"accuracy", "accuracy_se", *task.metric.companions} <= set(metrics) and metrics["images"] == 32
    outputs = model.eval()(task.sensitivity_batches(1)[0][0])
    assert [o[0].shape[-1] for o in outputs] == [96 // s for s in STRIDES]
    assert len(decode(outputs, score_threshold=0.05, iou_threshold=0.5)) == 16


def test_a_mirrored_batch_keeps_boxes_on_their_objects(task):
    torch.manual_seed(1)
    _x, targets = task.train_batch(torch.arange(16))
    plain = task._train_targets
    for (cls, box), (cls0, box0) in zip(targets, plain):
        for i in range(16):
            same = torch.equal(cls[i], cls0[i])
            mirrored = torch.equal(cls[i], cls0[i].flip(-1))
            assert same or mirrored
            if not same:   # a mirrored image: x1' = S - x2 at the mirrored cell
                assert torch.allclose(box[i, 0], 96 - box0[i, 2].flip(-1))


def test_rendered_scenes_written_as_coco_read_back_give_the_same_map(task, tmp_path):
    """The COCO door: the rendered splits written out in COCO format (category ids from 1, as
    COCO's own), read back through ``source: coco``, score the same model to the same mAP."""
    from trainables.detect.coco import write_coco

    coco = {split: {"images": str(tmp_path / split / "images"),
                    "annotations": str(write_coco(task.data(split), tmp_path / split, task.classes))}
            for split in ("train", "val", "test")}
    # a low score threshold, so that a briefly trained model's detections reach the metric
    low = {"score_threshold": 0.001, "widths": (8, 8, 16, 16, 16), "neck_channels": 16, "batch_size": 16, "bootstrap": 5}
    from_files = DetectTask(DetectConfig(source="coco", coco=coco, **low), cache_dir=tmp_path / "cache",
                            device="cpu", progress=False)
    task = DetectTask(DetectConfig(train_images=64, val_images=32, test_images=32, **low), cache_dir=task.cache_dir,
                      device="cpu", progress=False)
    assert from_files.classes == task.classes and from_files.steps_per_epoch() == task.steps_per_epoch()
    for split in ("train", "val"):
        ours, theirs = task.data(split), from_files.data(split)
        assert torch.equal(ours.images, theirs.images)
        assert all(torch.equal(a, b) for i in range(len(ours)) for a, b in zip(ours.objects(i), theirs.objects(i)))
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        task.train_epoch(model, optimizer, lambda: None)
    rendered, read_back = task.evaluate(model), from_files.evaluate(model)
    assert rendered["accuracy"] > 0                      # a model that finds something, so equality says something
    assert rendered == read_back


def test_a_coco_split_that_is_missing_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"task.coco must give train, val and test"):
        DetectConfig(source="coco", coco={"train": {"images": str(tmp_path), "annotations": "x.json"}})
    with pytest.raises(ValueError, match=r"task.coco.train.annotations: 'x.json' does not exist"):
        DetectConfig(source="coco", coco={s: {"images": str(tmp_path), "annotations": "x.json"}
                                          for s in ("train", "val", "test")})
