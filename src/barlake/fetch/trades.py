"""Fetching trades: one request's pages through the provider's rate limiter, each page checked
and streamed into the files of the sessions it holds as it arrives.

A print is stored only when it is whole and inside its session (``domain.trades.flaw``); a
session with a rejected print is not stored at all (its file stays as it was) and stays a gap,
with the error recorded at stage ``validate``, as a session with a rejected bar does. A
provider serves each symbol's prints oldest first (``TradeSource``), so a session is complete
once a later session of its symbol arrives, or when the request's last page is in; its file
appears then, whole. A page may repeat prints (dropped: the key is ``domain.trades.KEY``), or
come older than the one before it (the session is sorted once complete).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain import trades
from barlake.errors import AuthError, ProviderError
from barlake.fetch.actions import retried
from barlake.fetch.ratelimit import RateLimiter
from barlake.planning.trades import TradeRequest
from barlake.providers.base import Provider, TradePage, TradeSource
from barlake.storage.trades import SessionWriter, TradeStore

#: Why prints of a session that was already written are refused.
LATE = "prints came after their session was complete (pages out of order)"


@dataclass
class Fetched:
    """What one trades request brought, per symbol."""

    requests: int = 0
    #: Prints stored, and the sessions they were stored in.
    prints: dict[str, int] = field(default_factory=dict)
    stored: dict[str, list[date]] = field(default_factory=dict)
    #: Sessions that came back without prints (and without errors).
    empty: dict[str, list[date]] = field(default_factory=dict)
    #: ``{symbol: (error, stage)}``: the request failed for it (``fetch``) or some of its
    #: sessions were rejected (``validate``).
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)


class TradeFetcher:
    """Runs trade requests against one provider into one ``TradeStore``."""

    def __init__(
        self,
        provider: Provider,
        store: TradeStore,
        limiter: RateLimiter,
        calendars: Mapping[str, Calendar],
        *,
        attempts: int = 5,
    ) -> None:
        self.source = cast(TradeSource, provider)
        self.store, self.limiter, self.calendars = store, limiter, calendars
        self.attempts = attempts

    async def fetch(self, request: TradeRequest) -> Fetched:
        """Every page of ``request``, stored session by session; provider failures other
        than refused credentials are the request's symbols' errors (stage ``fetch``)."""
        run = _Run(self, request)
        try:
            cursor: str | None = None
            while True:
                page = await self._page(request, cursor, run.out)
                await run.take(page.trades)
                cursor = page.next_cursor
                if cursor is None:
                    break
        except AuthError:
            await run.abort()
            raise
        except ProviderError as exc:
            await run.abort()
            for sym in request.symbols:
                run.out.errors[sym] = (str(exc), "fetch")
            return run.out
        except BaseException:
            await run.abort()
            raise
        await run.finish()
        return run.out

    async def _page(self, request: TradeRequest, cursor: str | None, out: Fetched) -> TradePage:
        def sent() -> None:
            out.requests += 1

        return await retried(
            lambda: self.source.fetch_trades(request.symbols, request.range, cursor),
            self.limiter,
            self.attempts,
            sent,
        )


class _Run:
    """The state of one request: the open session writers and the rejected sessions."""

    def __init__(self, fetcher: TradeFetcher, request: TradeRequest) -> None:
        self.fetcher, self.request = fetcher, request
        self.out = Fetched()
        self.writers: dict[tuple[str, date], SessionWriter] = {}
        self.done: set[tuple[str, date]] = set()
        self.bad: dict[tuple[str, date], str] = {}
        self.newest: dict[str, date] = {}
        self.bounds: dict[str, tuple[list[date], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}

    async def take(self, page: pl.DataFrame) -> None:
        """Check ``page`` and hand its prints to their sessions' writers."""
        if page.is_empty():
            return
        try:
            frame = trades.conform(page)
        except pl.exceptions.PolarsError as exc:
            msg = f"a trades page that does not fit the trades schema ({exc})"
            raise ProviderError(msg) from exc
        asked = set(self.request.symbols)
        for (sym,), prints in frame.partition_by(
            "symbol", maintain_order=True, as_dict=True
        ).items():
            if sym not in asked:
                continue  # a vendor's print of a symbol not asked for is no symbol's data
            await self._take_symbol(str(sym), prints)
        for sym, newest in self.newest.items():
            for key in [k for k in self.writers if k[0] == sym and k[1] < newest]:
                await self._close(key)

    async def _take_symbol(self, sym: str, prints: pl.DataFrame) -> None:
        days, opens, closes = self._sessions(sym)
        ts = prints["ts"].dt.epoch("ns").fill_null(-1).to_numpy()
        price, size = prints["price"].to_numpy(), prints["size"].to_numpy()
        # Each print's session: the last open at or before it; inside it when before its close.
        at = np.searchsorted(opens, ts, side="right") - 1
        if len(opens):
            ok = (at >= 0) & (ts < closes[np.maximum(at, 0)]) & (price > 0) & (size > 0)
        else:  # the request holds no session of the symbol
            ok = np.zeros(len(ts), dtype=np.bool_)
        ok &= prints["trade_id"].is_not_null().to_numpy()
        if not bool(ok.all()):
            await self._flawed(sym, prints)
            prints, at = prints.filter(pl.Series(ok)), at[ok]
        if prints.is_empty():
            return
        # Sessions come in order within a symbol's pages: cut the page where the session changes.
        if len(at) > 1 and not bool((at[1:] >= at[:-1]).all()):
            order = np.argsort(at, kind="stable")
            prints, at = prints[order], at[order]
        cuts = [0, *(np.flatnonzero(at[1:] != at[:-1]) + 1).tolist(), len(at)]
        for lo, hi in itertools.pairwise(cuts):
            key = (sym, days[int(at[lo])])
            if key in self.bad:
                continue
            if key in self.done:
                await self._reject(sym, key[1], LATE)
                continue
            writer = self.writers.get(key)
            if writer is None:
                writer = self.writers[key] = self.fetcher.store.writer(sym, key[1])
            await writer.add(prints.slice(lo, hi - lo))
            self.newest[sym] = max(self.newest.get(sym, key[1]), key[1])

    def _sessions(
        self, sym: str
    ) -> tuple[list[date], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The request's sessions of ``sym``: dates, opens and closes (epoch nanoseconds)."""
        found = self.bounds.get(sym)
        if found is None:
            cal = self.fetcher.calendars[sym]
            i, j = np.searchsorted(
                cal.sessions,
                np.array([self.request.range.start, self.request.range.end], "datetime64[D]"),
            )
            days = [date.fromisoformat(str(d)) for d in cal.sessions[i:j]]
            found = (days, cal.opens[i:j] * 1000, cal.closes[i:j] * 1000)
            self.bounds[sym] = found
        return found

    async def _flawed(self, sym: str, prints: pl.DataFrame) -> None:
        """Reject the sessions of the prints of ``prints`` that ``trades.flaw`` finds."""
        cal = self.fetcher.calendars[sym]
        bounds = cal.bar_sessions(prints["ts"])
        window = self.request.range
        checked = prints.with_columns(
            _day=(pl.col("ts") + cal.day_shift).dt.date(),
            _open=pl.from_epoch(bounds["open"], "us").dt.replace_time_zone("UTC"),
            _close=pl.from_epoch(bounds["close"], "us").dt.replace_time_zone("UTC"),
        )
        inside = pl.col("_day").is_between(window.start, window.last)
        checked = checked.with_columns(
            _flaw=trades.flaw(pl.when(inside).then(pl.col("_open")), pl.col("_close")),
            # A print dated outside the request belongs to the session it came among.
            _among=pl.when(inside).then("_day").forward_fill().backward_fill(),
        )
        flawed = checked.filter(pl.col("_flaw").is_not_null())
        counted = flawed.group_by("_among", "_flaw", maintain_order=True).len()
        fallback = self.newest.get(sym, window.start)
        for when, why, n in counted.iter_rows():
            await self._reject(sym, when or fallback, f"{n} print(s) with {why}")

    async def _reject(self, sym: str, session: date, why: str) -> None:
        key = (sym, session)
        if key in self.bad:
            return
        self.bad[key] = why
        writer = self.writers.pop(key, None)
        if writer is not None:
            await writer.abort()
        if key in self.done:  # written already: it goes again, to be fetched again whole
            self.done.discard(key)
            self.fetcher.store.remove(sym, session)
            self.out.stored[sym].remove(session)
        msg = f"trades of {session} rejected: {why}; the session stays a gap"
        previous = self.out.errors.get(sym)
        if previous is not None:
            msg = f"{previous[0]}; {msg}"
        self.out.errors[sym] = (msg, "validate")

    async def _close(self, key: tuple[str, date]) -> None:
        writer = self.writers.pop(key)
        if key in self.bad:
            await writer.abort()
            return
        rows = await writer.commit()
        sym, session = key
        self.done.add(key)
        self.out.prints[sym] = self.out.prints.get(sym, 0) + rows
        self.out.stored.setdefault(sym, []).append(session)

    async def finish(self) -> None:
        """Write every session still open; the sessions without prints are empty."""
        for key in sorted(self.writers):
            await self._close(key)
        for sym in self.request.symbols:
            cal = self.fetcher.calendars[sym]
            for day in cal.sessions_in(self.request.range):
                session = date.fromisoformat(str(day))
                key = (sym, session)
                if key not in self.done and key not in self.bad:
                    self.out.empty.setdefault(sym, []).append(session)

    async def abort(self) -> None:
        """Leave every open session's file as it was."""
        for key in list(self.writers):
            await self.writers.pop(key).abort()
