"""What the HTTP adapters share: credentials, the one mapping of responses and transport failures
onto barlake's errors (pure, then over loopback), and bars read off the wire."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from barlake.calendars.calendar import get_calendar
from barlake.config import ProviderConfig
from barlake.domain import bars
from barlake.domain.bars import invalid_rows
from barlake.domain.ranges import DateRange
from barlake.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    RateLimitError,
    TransientError,
)
from barlake.providers.base import Request
from barlake.providers.http import (
    Credentials,
    HttpClient,
    check_base_url,
    credentials,
    error_for,
    retry_after,
)
from barlake.providers.polygon import PolygonProvider
from barlake.providers.wire import to_sessions, wire_bars, wire_columns

from .support import KEY, SECRET

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, AuthError, False),
        (403, AuthError, False),
        (429, RateLimitError, True),
        (500, TransientError, True),
        (503, TransientError, True),
        (400, PermanentError, False),
        (404, PermanentError, False),
        (422, PermanentError, False),
    ],
)
def test_status_maps_to_error(status, kind, retryable) -> None:
    error = error_for("vendor", status, {}, b'{"message": "nope"}', symbol="AAPL")
    assert type(error) is kind
    assert error.retryable is retryable
    assert f"HTTP {status}: nope" in str(error)
    if kind is PermanentError:
        assert error.symbol == "AAPL"


def test_success_is_no_error() -> None:
    assert error_for("vendor", 200, {}, b"{}") is None


def test_vendor_words_are_quoted_from_json_or_text() -> None:
    polygon = b'{"status":"ERROR","request_id":"x","error":"Unknown API Key"}'
    assert "Unknown API Key" in str(error_for("polygon", 401, {}, polygon))
    html = b"<html><body>403 Forbidden nginx</body></html>"
    assert "403 Forbidden nginx" in str(error_for("alpaca", 403, {}, html))


def test_retry_after_from_header_date_or_vendor_reset() -> None:
    assert retry_after({"Retry-After": "7"}, None, NOW) == 7
    when = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert retry_after({"retry-after": when}, None, NOW) == pytest.approx(30)
    assert retry_after({"X-RateLimit-Reset": str(int(NOW) + 12)}, "X-RateLimit-Reset", NOW) == 12
    assert retry_after({}, "X-RateLimit-Reset", NOW) is None
    reset = {"X-RateLimit-Reset": str(int(NOW) + 3)}
    limited = error_for("alpaca", 429, reset, b"", now=NOW, reset_header="X-RateLimit-Reset")
    assert isinstance(limited, RateLimitError) and limited.retry_after == 3


def test_credentials_from_env_first_then_options() -> None:
    env = {"APCA_API_KEY_ID": "env-key", "APCA_API_SECRET_KEY": "env-secret"}
    keys = ("APCA_API_KEY_ID",), ("APCA_API_SECRET_KEY",)
    options = {"api_key": "opt-key", "api_secret": "opt-secret"}
    assert credentials("alpaca", options, *keys, environ=env) == Credentials(
        "env-key", "env-secret"
    )
    assert credentials("alpaca", options, *keys, environ={}) == Credentials("opt-key", "opt-secret")
    both = ("POLYGON_API_KEY", "MASSIVE_API_KEY")
    assert credentials("polygon", {}, both, environ={"MASSIVE_API_KEY": "m"}).key == "m"
    with pytest.raises(AuthError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        credentials("alpaca", {"api_key": "only-key"}, *keys, environ={})
    assert "only-key" not in repr(Credentials("only-key"))


def test_redaction_and_base_url() -> None:
    creds = Credentials(KEY, SECRET)
    assert creds.redact(f"url?apiKey={KEY}&s={SECRET}") == "url?apiKey=***&s=***"
    error = error_for("v", 401, {}, f'{{"message": "bad key {KEY}"}}'.encode(), redact=creds.redact)
    assert KEY not in str(error)
    assert check_base_url("v", "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="base_url"):
        check_base_url("v", "127.0.0.1:9")


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("5xx", TransientError),
        ("timeout", TransientError),
        ("truncated", TransientError),
        ("malformed", TransientError),
    ],
)
def test_transport_faults_over_loopback_are_transient(emulator, fault, kind) -> None:
    em = emulator("alpaca", hang_s=1.0)
    em.faults.force(fault)
    with pytest.raises(kind) as caught:
        asyncio.run(_get(em.url, timeout_s=0.3))
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)
    assert asyncio.run(_get(em.url, timeout_s=0.3))["bars"] is not None  # the next one is fine


def test_refused_and_invalid_requests_over_loopback(emulator) -> None:
    em = emulator("alpaca")
    with pytest.raises(AuthError, match="401: request is not authorized") as refused:
        asyncio.run(_get(em.url, secret="not-it"))
    assert "not-it" not in str(refused.value)
    with pytest.raises(PermanentError, match="invalid timeframe") as invalid:
        asyncio.run(_get(em.url, timeframe="7Day"))
    assert invalid.value.symbol == "AAPL"


def test_connection_refused_is_transient(emulator) -> None:
    em = emulator("alpaca")
    em.stop()
    with pytest.raises(TransientError, match="connection failed"):
        asyncio.run(_get(em.url))


async def _get(url: str, *, timeout_s: float = 5, secret: str = SECRET, timeframe: str = "1Day"):
    client = HttpClient("alpaca", url, timeout_s=timeout_s)
    try:
        return await client.get_json(
            "/v2/stocks/bars",
            params={
                "symbols": "AAPL",
                "timeframe": timeframe,
                "start": "2024-06-03",
                "end": "2024-06-07",
                "feed": "iex",
            },
            headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": secret},
            creds=Credentials(KEY, secret),
            symbol="AAPL",
        )
    finally:
        await client.aclose()


def test_wire_bars_turn_odd_values_into_nulls() -> None:
    rows = [
        {"t": "2024-06-03T13:30:00Z", "o": 1, "h": 2.5, "l": 0.5, "c": 2, "v": 10, "n": 3},
        {"t": "garbage", "o": "x", "h": None, "l": True, "c": float("nan"), "v": -1},
        {"o": 1.0, "vw": 1.5, "n": 2.5},
    ]
    frame = wire_bars("v", rows, symbols=["A", "A", "B"], source="v", stamps="rfc3339")
    assert frame.height == 3 and frame["source"].to_list() == ["v"] * 3
    assert frame["ts"].null_count() == 2
    assert frame["open"].to_list() == [1.0, None, 1.0]
    assert frame["trades"].to_list() == [3, None, None]
    with pytest.raises(TransientError, match="not an object"):
        wire_bars("v", [[1, 2]], symbols="A", source="v", stamps="rfc3339")
    ms = wire_bars("v", [{"t": 1717387200000}], symbols="A", source="v", stamps="ms")
    assert ms["ts"][0] == datetime(2024, 6, 3, 4, tzinfo=UTC)


#: JSON values a vendor might send where a number belongs, odd ones included.
ODD = [None, True, False, "1.5", "x", [1], {"o": 1}, float("nan"), float("inf"), -0.0, 0, 3.0, 2.5]
#: The same instant spelled as vendors spell it (Alpaca: the first), and unreadable times.
SPELLINGS = [
    ("2024-01-03T05:00:00Z", datetime(2024, 1, 3, 5, tzinfo=UTC)),
    ("2024-01-03T00:00:00-05:00", datetime(2024, 1, 3, 5, tzinfo=UTC)),
    ("2024-01-03T06:00:00+01:00", datetime(2024, 1, 3, 5, tzinfo=UTC)),
    ("2024-01-03T05:00:00.250Z", datetime(2024, 1, 3, 5, 0, 0, 250_000, tzinfo=UTC)),
    ("garbage", None),
    ("2024-02-30T05:00:00Z", None),
]


def random_bars(seed: int, n: int, stamps: str, odd: float) -> list[dict[str, object]]:
    """``n`` bar objects as Alpaca (``rfc3339``) or Polygon (``ms``) send them; a share ``odd``
    of their values is something else (see ``ODD``), or left out."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        moment = datetime(2024, 6, 3, 13, 30, tzinfo=UTC) + timedelta(minutes=i)
        t: object = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if stamps == "ms":
            t = int(moment.timestamp() * 1000)
        o, c = rng.uniform(100, 500), rng.uniform(100, 500)
        h, low = max(o, c) + rng.uniform(0, 5), min(o, c) - rng.uniform(0, 5)
        bar = {"t": t, **{k: round(x, 4) for k, x in zip("ohlc", (o, h, low, c), strict=True)}}
        bar |= {"v": rng.randint(0, 10**6), "vw": rng.uniform(1, 500), "n": rng.randint(0, 999)}
        for key in list(bar):
            if rng.random() < odd:
                if rng.random() < 0.2:
                    del bar[key]
                else:
                    bar[key] = rng.choice(ODD if key != "t" else [None, 5, True, "garbage", 1.5])
        out.append(bar)
    return out


def bar_by_bar(
    objects: list[dict], symbols: list[str], stamps: str, source: str = "v"
) -> pl.DataFrame:
    """The lake's bars from ``objects`` one at a time, by the rules ``wire_bars`` documents."""

    def number(value: object) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def whole(value: object) -> int | None:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def time(value: object) -> datetime | None:
        if stamps == "ms":
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
        try:
            return datetime.fromisoformat(value).astimezone(UTC) if isinstance(value, str) else None
        except ValueError:
            return None

    rows = []
    for symbol, bar in zip(symbols, objects, strict=True):
        prices = [number(bar.get(key)) for key in ("o", "h", "l", "c", "v", "vw")]
        rows.append((symbol, time(bar.get("t")), *prices, whole(bar.get("n")), source))
    return pl.DataFrame(rows, schema=bars.SCHEMA, orient="row")


@pytest.mark.parametrize("stamps", ["rfc3339", "ms"])
@pytest.mark.parametrize("odd", [0.0, 0.02, 0.5])
def test_bulk_bars_equal_the_bar_by_bar_reading(stamps, odd) -> None:
    objects = random_bars(7, 400, stamps, odd)
    symbols = [f"S{i // 150}" for i in range(len(objects))]
    got = wire_bars("v", objects, symbols=symbols, source="v", stamps=stamps)
    assert_frame_equal(got, bar_by_bar(objects, symbols, stamps), check_exact=True)


def test_rfc3339_offsets_and_fractions_map_to_utc() -> None:
    for texts in ([s for s, _ in SPELLINGS], [SPELLINGS[0][0], SPELLINGS[-1][0]]):
        got = wire_bars("v", [{"t": t} for t in texts], symbols="A", source="v", stamps="rfc3339")
        assert got["ts"].to_list() == [dict(SPELLINGS)[t] for t in texts]


def test_an_odd_value_deep_in_a_large_page_is_a_null_for_validation_to_reject() -> None:
    objects = random_bars(3, 10_000, "rfc3339", 0.0)
    objects[5_000]["o"] = "12.5"
    objects[7_000]["n"] = 2.5
    objects[8_000]["t"] = 1717387200  # epoch seconds, not RFC 3339
    got = wire_bars("alpaca", objects, symbols="A", source="alpaca", stamps="rfc3339")
    assert got.height == 10_000
    assert got["open"].null_count() == 1 and got["open"][5_000] is None
    assert got["trades"].null_count() == 1 and got["trades"][7_000] is None
    assert got["ts"].null_count() == 1 and got["ts"][8_000] is None
    assert invalid_rows(got).arg_true().to_list() == [5_000, 8_000]  # no trade count is fine
    assert_frame_equal(
        got, bar_by_bar(objects, ["A"] * 10_000, "rfc3339", "alpaca"), check_exact=True
    )


@pytest.mark.parametrize("vendor", ["alpaca", "polygon"])
def test_a_non_object_deep_in_a_large_page_fails_the_page_naming_it(vendor) -> None:
    objects: list[object] = [*random_bars(5, 10_000, "ms", 0.0)]
    objects[6_000] = [1717387200000, 1.5]
    with pytest.raises(TransientError, match=rf"^{vendor} sent a bar that is not an object: ") as e:
        wire_bars(vendor, objects, symbols="A", source=vendor, stamps="ms")
    assert str(e.value).endswith("[1717387200000, 1.5]") and e.value.retryable
    assert "\n" not in str(e.value)


def test_optional_fields_left_out_are_nulls() -> None:
    objects = [
        {"t": 1717387200000 + i, "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "v": 5} for i in range(3)
    ]
    got = wire_bars("v", objects, symbols="A", source="v", stamps="ms")
    assert got.schema == pl.Schema(bars.SCHEMA)
    assert got["vwap"].to_list() == got["trades"].to_list() == [None] * 3
    assert not invalid_rows(got).any()
    columns = wire_columns({"ts": [1717387200, None]}, symbols="A", source="v", stamps="s")
    assert columns.schema == pl.Schema(bars.SCHEMA)
    assert columns["ts"].to_list() == [datetime(2024, 6, 3, 4, tzinfo=UTC), None]
    assert columns.drop("symbol", "ts", "source").null_count().row(0) == (2,) * 7


def test_daily_bars_keyed_by_session_date_whatever_the_stamp() -> None:
    cal = get_calendar("XNYS")
    stamps = [1717387200000, 1717444800000, 1702616400000]  # 06-03 00:00 EDT, 16:00 EDT; 12-15 EST
    frame = wire_bars("v", [{"t": t} for t in stamps], symbols="A", source="v", stamps="ms")
    days = to_sessions(frame, "1day", cal)["ts"].to_list()
    midnight = [datetime(2024, 6, 3, tzinfo=UTC)] * 2 + [datetime(2023, 12, 15, tzinfo=UTC)]
    assert days == midnight


def test_intraday_bars_outside_the_session_are_dropped() -> None:
    cal = get_calendar("XNYS")
    day = date(2024, 11, 29)  # closes early, at 13:00 EST
    opened, closed = cal.open_close(day)
    stamps = [opened.replace(hour=9), opened, closed.replace(minute=0, hour=17), closed]
    rows = [{"t": t.strftime("%Y-%m-%dT%H:%M:%SZ")} for t in stamps]
    rows.append({"t": "2024-11-30T15:00:00Z"})  # a Saturday
    rows.append({"t": None})
    kept = to_sessions(wire_bars("v", rows, symbols="A", source="v", stamps="rfc3339"), "1min", cal)
    assert kept["ts"].to_list() == [opened, closed.replace(minute=0, hour=17), None]
    assert kept.schema == wire_bars("v", [], symbols=[], source="v", stamps="rfc3339").schema
    assert isinstance(kept, pl.DataFrame)


def test_polygon_session_not_ended_is_not_a_credentials_problem(emulator) -> None:
    em = emulator("polygon", now=datetime(2024, 6, 3, 15, tzinfo=UTC))  # mid-session
    provider = PolygonProvider(ProviderConfig(base_url=em.url, options={"api_key": KEY}))
    request = Request(
        "polygon", ("AAPL", "MSFT"), "1day", DateRange.inclusive(*[date(2024, 6, 3)] * 2)
    )

    async def fetch() -> None:
        try:
            await provider.fetch_page(request)
        finally:
            await provider.aclose()

    with pytest.raises(PermanentError, match="after its close") as caught:
        asyncio.run(fetch())
    assert caught.value.symbol is None
    assert em.log == [(403, "/v2/aggs/grouped/locale/us/market/stocks/2024-06-03")]
