"""The OpenAPI document against the running app (schemathesis): for every operation, valid and
invalid inputs get no 500, and every answer matches the documented status, type and schema."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
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
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = op.as_strategy(generation_mode=mode)

                @given(case=strategy)
                @settings(
                    max_examples=12,
                    deadline=None,
                    derandomize=True,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def conforms(case: schemathesis.Case) -> None:
                    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

                conforms()
