"""The on-disk calendar cache returns exactly what exchange_calendars builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from barlake.calendars import calendar


def test_cached_calendar_equals_built_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BARLAKE_CACHE_DIR", str(tmp_path))
    calendar.get_calendar.cache_clear()
    try:
        built = calendar.get_calendar("XNYS")
        files = list((tmp_path / "calendars").glob("XNYS-*.npz"))
        assert len(files) == 1
        calendar.get_calendar.cache_clear()
        loaded = calendar.get_calendar("XNYS")
        assert loaded is not built
        assert loaded.tz == built.tz == "America/New_York"
        for field in ("sessions", "opens", "closes"):
            assert np.array_equal(getattr(loaded, field), getattr(built, field))
        # A corrupt cache is rebuilt, not trusted.
        files[0].write_bytes(b"not a numpy file")
        calendar.get_calendar.cache_clear()
        again = calendar.get_calendar("XNYS")
        assert np.array_equal(again.sessions, built.sessions)
    finally:
        calendar.get_calendar.cache_clear()
