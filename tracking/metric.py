"""How a task's score reads: its name in tables and log lines, its plot label, its companions."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """``name`` is short (tables, log lines: ``"mAP@.5"``), ``label`` the plot's axis;
    ``companions`` maps other keys of a task's ``evaluate`` result to their labels: each gets a
    table column and a line after pretraining. The score itself is always reported as
    ``accuracy`` (higher is better) with ``accuracy_se``, its standard error."""

    name: str = "accuracy"
    label: str = "accuracy"
    companions: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "companions": dict(self.companions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metric:
        return cls(str(data["name"]), str(data["label"]), dict(data.get("companions") or {}))


#: a plain ``accuracy``: how a search's score reads when its task says nothing else
ACCURACY = Metric()
