import re

from mqat import demo


def test_demo_prints_accuracy_and_compression_per_stage(capsys):
    assert demo.main(["--epochs", "3", "--stage-epochs", "1", "--target", "8"]) == 0
    out = capsys.readouterr().out
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^(fpn|head|backbone|qc)\s+([\d.]+)\s+\S+\s+([\d.]+)x", out, re.MULTILINE)}
    assert list(rows) == ["fpn", "head", "backbone", "qc"]
    assert rows["backbone"][1] >= 8.0  # the ILP plan meets the target
    assert rows["fpn"][1] < rows["head"][1] < rows["backbone"][1]
    assert rows["qc"][0] > 0.5  # a 10-class task: far above chance after 5 epochs in all
