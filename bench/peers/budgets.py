"""Budgets: a target weight compression in the project's own measure, and what each peer is asked
for to land there. Pure functions of weight counts and bits (no torch), so the tests pin them.

The project's measure (``mqat.model_size``): ``32 (N + F) / (sum_l b_l N_l + 32 F)``, N the weights
that get bits and F those kept at full precision (the task's first and last layers).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FULL_PRECISION = 32
#: ModelOpt counts a layer it leaves unquantized at 16 bits (its bf16 baseline), quantized or not
MODELOPT_UNQUANTIZED_BITS = 16


def compression(bits: Mapping[str, int], counts: Mapping[str, int], fp_weights: int = 0) -> float:
    """The project's weight compression of per-layer ``bits`` (layer -> bits) over ``counts``
    (layer -> weights), with ``fp_weights`` kept at full precision."""
    missing = sorted(set(counts) - set(bits))
    if missing:
        raise ValueError(f"bits name no bit-width for layer(s) {missing}")
    total = sum(counts.values()) + fp_weights
    return FULL_PRECISION * total / (sum(bits[n] * c for n, c in counts.items()) + FULL_PRECISION * fp_weights)


def modelopt_effective_bits(target: float, quantized_weights: int, fp_weights: int = 0) -> float:
    """ModelOpt's ``effective_bits`` for a target compression ``x``. It averages bits over every
    layer it sees, a layer left unquantized (the full-precision first and last) at 16, so it is
    ``(sum b N + 16 F) / (N + F)``; the project's ``x`` needs ``sum b N = 32 (N + F) / x - 32 F``,
    hence ``32 / x - 16 F / (N + F)``."""
    if target < 1:
        raise ValueError(f"a target compression must be at least 1, but got {target!r}")
    total = quantized_weights + fp_weights
    return FULL_PRECISION / target - (FULL_PRECISION - MODELOPT_UNQUANTIZED_BITS) * fp_weights / total


@dataclass(frozen=True)
class Candidate:
    """One of the bit sequences HAWQ scores: NNCF's compression ratio of it (FLOPs-weighted, 1 = all
    int8), its HAWQ metric (summed trace x quantization noise; lower is better) and its per-layer bits."""

    ratio: float
    metric: float
    bits: Mapping[str, int]


def hawq_choice(candidates: Sequence[Candidate], ratio: float) -> int:
    """The index of the candidate NNCF's HAWQ picks at ``compression_ratio = ratio``: the least
    metric among those whose own ratio is at least ``ratio``, the first on a tie
    (``HAWQPrecisionInitializer.choose_qconfig_sequence``)."""
    allowed = [i for i, c in enumerate(candidates) if c.ratio >= ratio]
    if not allowed:
        top = max(c.ratio for c in candidates)
        raise ValueError(f"no HAWQ candidate reaches compression ratio {ratio:g}; the highest is {top:g}")
    return min(allowed, key=lambda i: (candidates[i].metric, i))


def hawq_plans(candidates: Sequence[Candidate], counts: Mapping[str, int], fp_weights: int,
               targets: Sequence[float]) -> dict[float, tuple[float, int]]:
    """Per target, ``(ratio, index)``: the ``compression_ratio`` to give HAWQ, among those its
    candidates attain, whose choice lands nearest the target in the project's measure, and that
    choice. NNCF's ratio weighs layers by FLOPs, the project's by weights: a fixed conversion
    between them misses (the pose network's last conv holds half the weights and few FLOPs), so the
    mapping asks HAWQ itself at every ratio."""
    choices = {r: hawq_choice(candidates, r) for r in sorted({c.ratio for c in candidates})}
    landed = {r: compression(candidates[i].bits, counts, fp_weights) for r, i in choices.items()}
    out = {}
    for target in targets:
        ratio = min(choices, key=lambda r: (abs(landed[r] - target), candidates[choices[r]].metric))
        out[target] = (ratio, choices[ratio])
    return out
