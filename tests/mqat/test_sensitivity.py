import json

import torch
from torch.nn import functional as F

import mqat


def _loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def test_fewer_bits_hurt_more_and_model_is_untouched(net, module_map):
    batches = [(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))) for _ in range(2)]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    calls = []
    table = mqat.sensitivity(net, module_map, loss_fn=_loss, batches=batches, bits=(2, 8),
                             on_progress=lambda done, total: calls.append((done, total)))
    assert set(table.delta) == {"backbone", "fpn", "head"}
    for module, row in table.delta.items():
        assert abs(row[2]) > abs(row[8]), module
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not mqat.quantized_layers(net)
    assert calls[-1] == (7, 7)
    assert "2-bit" in str(table)


def test_table_round_trips_through_json():
    table = mqat.SensitivityTable(0.5, {"a": {2: 1.0, 4: 0.25}})
    again = mqat.SensitivityTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table and again.bits == (2, 4)
