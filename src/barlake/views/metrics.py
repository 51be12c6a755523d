"""The service's figures in the Prometheus text format (version 0.0.4), written by hand: a
dozen lines do not need a client library, nor its process-wide registry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Metric:
    """One metric family: its samples as (labels, value)."""

    name: str
    kind: str  # gauge or counter
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text of ``metrics``: HELP, TYPE and one line per sample."""
    lines: list[str] = []
    for m in metrics:
        lines += [f"# HELP {m.name} {m.help}", f"# TYPE {m.name} {m.kind}"]
        for labels, value in m.samples:
            inner = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            lines.append(
                f"{m.name}{{{inner}}} {_number(value)}" if inner else f"{m.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"
