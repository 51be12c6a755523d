"""Scheduled upkeep: lake.yaml's ``schedule:`` entries, turned into queued requests when due.

- ``update`` (no cron): after each session's close plus ``grace_minutes`` on every calendar the
  active symbols trade on, queue a fill of those symbols by policy. Planned at claim time, it
  fetches the new session and whatever is still provisional or missing in their retention.
- an entry with a ``cron`` (five fields, read in its calendar's time zone) queues its action
  (``check``, ``prune`` or ``update``) at each time the expression names. A new entry starts
  counting from the moment the worker first sees it; missed times are caught up once, not
  once per missed time.

Each firing is queued under an idempotency key naming the entry and the session or time, so
two workers that see it due at once queue it once. ``schedule_runs`` remembers the last one.

```yaml
schedule:
  - action: update            # the daily update, 30 minutes after each close
    grace_minutes: 30
  - action: check             # nightly, 02:00 New York time
    cron: "0 2 * * *"
  - action: prune             # weekly, Sunday 03:00
    cron: "0 3 * * 0"
```
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from barlake.calendars.calendar import Calendar, get_calendar
from barlake.clock import Clock
from barlake.config import ScheduleEntry
from barlake.errors import ConfigError, LakeError
from barlake.jobs.queue import Queue, Request
from barlake.retention.selection import Selection
from barlake.universe.registry import Registry


class Schedule:
    """The lake's schedule entries, checked by the worker between requests."""

    def __init__(
        self, entries: Sequence[ScheduleEntry], queue: Queue, registry: Registry, clock: Clock
    ) -> None:
        labels = [e.label for e in entries]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            msg = f"lake.yaml: schedule entries share the name {twice[0]!r}; give each a name"
            raise ConfigError(msg)
        self.entries, self.queue, self.registry, self.clock = list(entries), queue, registry, clock
        self._zones: dict[str, ZoneInfo] = {}
        for i, entry in enumerate(self.entries):
            try:
                self._zones[entry.label] = ZoneInfo(get_calendar(entry.calendar).tz)
            except LakeError as exc:
                msg = f"lake.yaml: schedule[{i}].calendar: {exc}"
                raise ConfigError(msg) from None

    def due(self) -> list[Request]:
        """Queue what every due entry asks for; returns the requests newly queued."""
        if not self.entries:
            return []
        now = self.clock()
        runs = self.queue.catalog.schedule_runs()
        out: list[Request] = []
        for entry in self.entries:
            if entry.cron is None:
                out += self._after_close(entry, now, runs)
            else:
                out += self._cron(entry, now, runs)
        return out

    # -- the two kinds of entry --------------------------------------------------------------

    def _after_close(
        self, entry: ScheduleEntry, now: datetime, runs: dict[str, tuple[datetime, str | None]]
    ) -> list[Request]:
        out = []
        grace = timedelta(minutes=entry.grace_minutes)
        for calendar, names in self._active_by_calendar(entry).items():
            session = calendar.closed_before(now, grace)
            if session is None:
                continue
            key = f"{entry.label}:{calendar.name}"
            if runs.get(key, (None, None))[1] == session.isoformat():
                continue
            request, new = self._update(entry, names, f"schedule {key} {session}")
            self.queue.catalog.record_schedule_run(key, now, session.isoformat())
            out += [request] if new else []
        return out

    def _cron(
        self, entry: ScheduleEntry, now: datetime, runs: dict[str, tuple[datetime, str | None]]
    ) -> list[Request]:
        from croniter import croniter

        last = runs.get(entry.label)
        if last is None:  # counts from now: a new entry does not fire at once
            self.queue.catalog.record_schedule_run(entry.label, now, None)
            return []
        assert entry.cron is not None
        fire = croniter(entry.cron, last[0].astimezone(self._zones[entry.label])).get_next(datetime)
        if fire > now:
            return []
        key = f"schedule {entry.label} {fire.isoformat()}"
        if entry.action == "update":
            out = [
                self._update(entry, names, f"{key} {calendar.name}")
                for calendar, names in self._active_by_calendar(entry).items()
            ]
        else:
            chosen = Selection(intervals=tuple(entry.interval) if entry.interval else None)
            out = [
                self.queue.enqueue(
                    entry.action,
                    chosen.parameters(None),
                    provider=None,
                    priority=0,
                    source="schedule",
                    key=key,
                )
            ]
        self.queue.catalog.record_schedule_run(entry.label, now, fire.isoformat())
        return [r for r, new in out if new]

    def _update(self, entry: ScheduleEntry, names: list[str], key: str) -> tuple[Request, bool]:
        chosen = Selection(
            symbols=tuple(names), intervals=tuple(entry.interval) if entry.interval else None
        )
        return self.queue.enqueue(
            "fill",
            chosen.parameters(None),
            provider=self.queue.config.default_provider,
            priority=0,
            source="schedule",
            key=key,
        )

    def _active_by_calendar(self, entry: ScheduleEntry) -> dict[Calendar, list[str]]:
        """The active symbols on each calendar (only the entry's own when it names one)."""
        with self.queue.catalog.session(read_only=True):
            found = self.registry.members(None)
        out: dict[Calendar, list[str]] = {}
        only = entry.calendar if "calendar" in entry.model_fields_set else None
        for m in found:
            if only is None or m.calendar.name == only:
                out.setdefault(m.calendar, []).append(m.name)
        return out
