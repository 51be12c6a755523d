"""The OpenAPI document against the running app (schemathesis): for every operation, valid and
invalid inputs get no 500, and every answer matches the documented status, type and schema.

One check is left out: "schema-valid data is accepted". The library checks what a schema
cannot (a symbol the lake does not track, reversed dates, an unknown policy or interval), and
answers those with the CLI's message and a documented 400.
"""

from __future__ import annotations

import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from .support import TOKEN, demo_lake, serving

OPERATIONS = {
    "POST /backfills",
    "GET /backfills",
    "GET /backfills/{request_id}",
    "DELETE /backfills/{request_id}",
    "GET /plan",
    "GET /jobs",
    "GET /jobs/{job_id}",
    "GET /jobs/{job_id}/errors",
    "GET /symbols",
    "POST /symbols",
    "PUT /symbols/{symbol}/layer",
    "POST /layers",
    "GET /info",
    "GET /gaps",
    "GET /coverage",
    "GET /events",
    "GET /findings",
    "POST /checks",
    "GET /health",
    "GET /metrics",
}


def test_every_operation_keeps_to_its_schema(tmp_path: Path) -> None:
    lake, _ = demo_lake(tmp_path / "lake", ["AAA", "BBB"])
    lake.fill(interval="1day", days=10)
    with serving(lake, workers=0) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {f"{op.method.upper()} {op.path}" for op in operations} == OPERATIONS
        spent: dict[str, float] = {}
        for op in operations:
            # A path of free strings has nothing to violate: invalid input needs a body or query.
            constrained = len(op.query) > 0 or len(op.body) > 0
            modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * constrained
            for mode in modes:
                strategy = op.as_strategy(generation_mode=mode)

                @given(case=strategy)
                @settings(
                    max_examples=8,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def conforms(case: schemathesis.Case) -> None:
                    case.call_and_validate(
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        excluded_checks=[checks.positive_data_acceptance],
                    )

                started = time.monotonic()
                try:
                    conforms()
                except Unsatisfiable:
                    # Nothing invalid can be sent to an operation that takes nothing.
                    assert mode is GenerationMode.NEGATIVE, op.path
                spent[f"{op.method.upper()} {op.path} {mode.value}"] = time.monotonic() - started
        print(sorted(((k, round(v, 1)) for k, v in spent.items()), key=lambda kv: -kv[1]))
