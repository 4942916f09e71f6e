import pytest
import torch
from torch import nn

import mqat


class WideNet(nn.Module):
    """Enough weights that a file's header is small beside its payload."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(16, 128, 3, padding=1, bias=False), nn.ReLU(),
                                      nn.Conv2d(128, 128, 3, padding=1, bias=False), nn.ReLU())
        self.fpn = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1, bias=False), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(128, 64, 3, padding=1, bias=False))

    def forward(self, x):
        return self.head(self.fpn(self.backbone(x)))


MODULES = {"backbone": ["backbone."], "fpn": ["fpn."], "head": ["head."]}


@pytest.mark.parametrize("bits", [(2, 2, 2), (4, 2, 8), (3, 5, 7)])
def test_round_trip_exact_and_size_follows_plan(tmp_path, bits):
    model = WideNet()
    mm = mqat.ModuleMap(MODULES)
    plan = mqat.BitPlan(dict(zip(MODULES, bits)), act_bits=8)
    mqat.quantize_(model, plan, mm)
    x = torch.randn(2, 16, 8, 8)
    model(x)
    model.eval()
    size = mqat.export_packed(model, plan, mm, tmp_path / "m.mqat")

    loaded = mqat.load_packed(tmp_path / "m.mqat", model=WideNet()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))

    counts = {m: s.weights for m, s in mqat.model_size(model, plan, mm).modules.items()}
    steps = sum(l.weight.shape[0] + 1 for _, l in mqat.quantized_layers(model)) * 4
    expected = sum(plan.weight_bits[m] * n for m, n in counts.items()) / 8 + steps
    assert abs(size - expected) / expected < 0.05
    assert size == (tmp_path / "m.mqat").stat().st_size


def test_payload_matches_model_size_and_bn_is_kept(tmp_path, net, module_map, batch):
    plan = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 6})
    mqat.quantize_(net, plan, module_map)
    net.train()
    net(batch)
    net.eval()
    mqat.export_packed(net, plan, module_map, tmp_path / "m.mqat")
    packed = mqat.load_packed(tmp_path / "m.mqat")
    assert packed.plan == plan and packed.module_map.prefixes == module_map.prefixes
    assert torch.equal(packed.state_dict["backbone.1.running_var"], net.backbone[1].running_var)
    raw = (tmp_path / "m.mqat").read_bytes()
    header_length = int.from_bytes(raw[8:16], "little")
    payload = len(raw) - 16 - header_length
    assert payload == mqat.model_size(net, plan, module_map).packed_bytes
    loaded = packed.load_into(type(net)()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(batch), net(batch))


def test_uninitialised_quantizer_refused_and_nothing_written(tmp_path, net, module_map):
    plan = mqat.BitPlan({"backbone": 4, "fpn": 2, "head": 6})
    mqat.quantize_(net, plan, module_map)
    with pytest.raises(ValueError, match="never initialised"):
        mqat.export_packed(net, plan, module_map, tmp_path / "m.mqat")
    assert list(tmp_path.iterdir()) == []


def test_not_a_packed_file(tmp_path):
    bad = tmp_path / "bad.mqat"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not an mqat packed model"):
        mqat.load_packed(bad)
    with pytest.raises(ValueError, match="no packed model"):
        mqat.load_packed(tmp_path / "missing.mqat")


def test_pack_codes_round_trip():
    from mqat._export import pack_codes, unpack_codes
    for bits in range(2, 9):
        codes = torch.randint(0, 2**bits, (1001,), dtype=torch.uint8).numpy()
        data = pack_codes(codes, bits)
        assert len(data) == -(-1001 * bits // 8)
        assert (unpack_codes(data, bits, 1001) == codes).all()


def test_round_trip_after_qc_gave_bias_free_layers_a_bias(tmp_path, net, module_map, batch):
    from tests.conftest import TinyNet
    plan = mqat.BitPlan({"backbone": 4, "fpn": 3, "head": 8})
    mqat.quantize_(net, plan, module_map)
    net(batch)
    net.eval()
    params = mqat.add_qc(net)
    with torch.no_grad():
        for p in params:
            p.add_(0.1)
    mqat.fold_qc(net)
    assert net.backbone[0].bias is not None            # the first conv had none before QC
    mqat.export_packed(net, plan, module_map, tmp_path / "m.mqat")
    loaded = mqat.load_packed(tmp_path / "m.mqat", model=TinyNet()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(batch), net(batch))


def test_atomic_write_leaves_the_old_file_and_no_part_when_writing_fails(tmp_path):
    from mqat import atomic_write
    path = tmp_path / "table.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fails(f):
        f.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fails)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.bin"]
    atomic_write(path, lambda f: f.write("new"), text=True)
    assert path.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_atomic_write_gives_the_file_a_new_files_mode_not_a_private_one(tmp_path):
    """The search's table and plot are read by others on shared storage: mkstemp's 0600 was kept
    (trials.parquet and pareto.png were the only private files of a search)."""
    import os
    import stat

    from mqat import atomic_write
    mask = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "trials.parquet", lambda f: f.write(b"rows"))
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640
