"""The composition root: a lake's configuration in, its adapters and services out.

Nothing below ``Lake`` builds a backend: this module chooses the file system, the catalog and
the providers, hands every part the one clock, and wires the use cases together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from barlake.catalog.embedded import Tables
from barlake.clock import Clock
from barlake.config import LakeConfig, StorageConfig, load
from barlake.coverage.finder import GapFinder
from barlake.fetch.ratewindow import Window
from barlake.fetch.resample import Resampler
from barlake.jobs.actions import Actions
from barlake.jobs.backfill import Backfill
from barlake.providers import open_provider
from barlake.providers.base import Provider
from barlake.quality.check import Checker
from barlake.retention.effective import lake_policy
from barlake.retention.policy import Policies
from barlake.storage.filesystem import FileSystem, LocalFileSystem
from barlake.storage.lock import FillLock
from barlake.storage.objectstore import ObjectStore
from barlake.storage.store import Store
from barlake.storage.trades import TradeStore
from barlake.universe.registry import Registry


def file_system(root: Path, storage: StorageConfig) -> FileSystem:
    """Where the lake at ``root`` keeps its bar files: ``storage.url`` (a bucket), else the
    lake folder itself."""
    if storage.url is None:
        return LocalFileSystem()
    return ObjectStore(storage.url, root, endpoint_url=storage.endpoint_url, region=storage.region)


class Providers:
    """Providers by name: those handed in (the caller owns and closes them), else new ones
    built from lake.yaml's ``providers`` section (closed after each job)."""

    def __init__(
        self, config: LakeConfig, clock: Clock, given: Mapping[str, Provider] | None = None
    ) -> None:
        self.config, self.clock = config, clock
        self.given = dict(given or {})

    def open(self, name: str) -> Provider:
        if name in self.given:
            return self.given[name]
        return open_provider(name, self.config.provider(name), clock=self.clock)

    def owns(self, name: str) -> bool:
        return name in self.given


@dataclass(frozen=True)
class Services:
    """Everything a ``Lake`` delegates to."""

    config: LakeConfig
    store: Store
    catalog: Tables
    registry: Registry
    finder: GapFinder
    policies: Policies
    providers: Providers
    backfill: Backfill
    checker: Checker
    actions: Actions
    trades: TradeStore


def windows_of(catalog: Tables) -> Callable[[str, int], Window] | None:
    """Where rate-limit windows live: in a PostgreSQL catalog, which every machine of a team
    shares; None for the DuckDB file's lake (files in the cache directory, this machine's)."""
    if catalog.dialect != "postgres":
        return None
    from barlake.catalog.postgres import PostgresCatalog, PostgresWindow

    assert isinstance(catalog, PostgresCatalog)

    def window(key: str, limit: int) -> Window:
        return PostgresWindow(catalog, key)

    return window


def wire(
    root: Path,
    *,
    clock: Clock,
    store: Store,
    catalog: Tables,
    providers: Mapping[str, Provider] | None = None,
    config: LakeConfig | None = None,
) -> Services:
    """The services of the lake at ``root``."""
    config = config or load(root)
    registry = Registry(catalog)
    finder = GapFinder(store, catalog, clock)
    trades = TradeStore(root, store.fs)
    # lake.yaml's retention sections, its default_policy, or scanner_layers by use_scanner_layers
    policies = Policies(root, lake_policy(config)[0])
    sources = Providers(config, clock, providers)

    def lock() -> FillLock:
        return FillLock(root)

    grace = timedelta(minutes=config.backfill.provisional_grace_minutes)

    backfill = Backfill(
        windows=windows_of(catalog),
        catalog=catalog,
        registry=registry,
        finder=finder,
        policies=policies,
        providers=sources,
        bars=store,
        config=config,
        clock=clock,
        fill_lock=lock,
        resampler=Resampler(finder, store, clock, grace),
        trades=trades,
    )
    checker = Checker(
        finder=finder,
        bars=store,
        catalog=catalog,
        clock=clock,
        grace=grace,
        trades=trades,
    )
    actions = Actions(backfill, catalog, clock)
    return Services(
        config,
        store,
        catalog,
        registry,
        finder,
        policies,
        sources,
        backfill,
        checker,
        actions,
        trades,
    )
