"""The day index: which days each symbol has bars on, per data file, so that gap queries need
not read Parquet.

One small file per data file, in a tree beside ``bars/`` that no Parquet reader looks at::

    bars/interval=1day/year=2024/data.parquet              -> dayindex/interval=1day/year=2024.days
    bars/interval=1min/symbol=AAPL/month=2024-06/data.parquet
                                         -> dayindex/interval=1min/symbol=AAPL/month=2024-06.days

An entry holds, per symbol of the file, a bitmask of time slots that have at least one bar start:
days for daily bars, quarter hours for intraday bars. Quarter hours let one entry answer for any
exchange, whose session date is the UTC date after a shift of a whole number of quarter hours
(its standard UTC offset; see ``Calendar.day_shift``).

An entry is stamped with the version (``FileSystem.version``) of the data file it describes and
is used only while the file still has that version: on local disk its (size, mtime_ns, inode).
The store writes entries after each data file, taking the version of the staged file before it is
moved into place (on local disk a rename keeps all three), so the stamp names exactly the content
the entry was computed from. Anything else (a file replaced by hand or by another tool, a writer
killed between the two writes, a copied lake, a deleted or damaged entry) leaves an entry that
does not match, and the reader rebuilds it from the Parquet file. Entries are a cache: they are
replaced atomically (readers never see half of one) but not flushed to disk, since a damaged
entry fails its checksum and is rebuilt like a stale one.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.domain.bars import KEY, PRICED, PRICES
from barlake.domain.intervals import Interval, spec
from barlake.errors import StorageError
from barlake.storage.filesystem import FileSystem, Version

DAY_US = 86_400_000_000
INTRADAY_SLOT_US = 900_000_000  # a quarter hour: every exchange's UTC offset is a multiple
SUFFIX = ".days"
REBUILD_THREADS = 4
_MAGIC = b"BLDX"
_FORMAT = 2
# magic, format, slot length (us), first slot, slot count, symbol count, characters per name,
# and the lengths of the data file's version: of its ``struct`` format and of all of it; then the
# version (its format, ``q`` for a number and ``<n>s`` for a string of n UTF-8 bytes, and the
# packed parts: one ``struct`` call reads it back), padded to a multiple of 8 bytes; the sorted
# names as fixed-width UTF-32 (read back without a copy or a parse), the bitmasks, and a CRC-32
# of all that precedes.
_HEADER = struct.Struct("<4sHxxqqqIIHH4x")
# Format 1, written before versions came from the file system: the data file's size, mtime_ns
# and inode in the header. Still read, as the version a local file has, so that existing lakes
# keep their entries.
_HEADER_1 = struct.Struct("<4sHxxqqqqqqII")
_CRC = struct.Struct("<I")

Bools = npt.NDArray[np.bool_]
Strings = npt.NDArray[np.str_]
Indices = npt.NDArray[np.intp]


def slot_us(interval: Interval) -> int:
    return INTRADAY_SLOT_US if spec(interval).intraday else DAY_US


def can_answer(interval: Interval, day_shift_us: int) -> bool:
    """Whether entries of ``interval`` can give session dates under ``day_shift_us``."""
    return not spec(interval).intraday or day_shift_us % INTRADAY_SLOT_US == 0


@dataclass(frozen=True)
class Entry:
    """The occupied slots of one data file: row ``i`` of ``bits`` is symbol ``names[i]``."""

    names: Strings  # sorted
    bits: npt.NDArray[np.uint8]  # (symbols, ceil(slots / 8)), little bit order
    first: int  # the first slot (a day boundary), counted from 1970-01-01
    slots: int  # a whole number of days
    slot_us: int

    def rows_of(self, names: Strings) -> tuple[Indices, Indices]:
        """Where the entry's symbols are among the sorted ``names``, and their rows here."""
        at = np.searchsorted(self.names, names)
        if len(self.names):
            found = self.names[np.minimum(at, len(self.names) - 1)] == names
        else:
            found = np.zeros(len(names), dtype=np.bool_)
        where = np.flatnonzero(found)
        return where, at[where]


def by_day(
    bits: npt.NDArray[np.uint8], first: int, slots: int, slot: int, shift_us: int
) -> tuple[int, Bools]:
    """Bitmasks of ``slots`` slots from ``first`` as the first day number and a (rows, days)
    mask of the days with a bar, a bar's day being the UTC date of its start plus ``shift_us``."""
    occupied = np.unpackbits(bits, axis=1, count=slots, bitorder="little").view(np.bool_)
    per_day = DAY_US // slot
    if per_day == 1:
        return first, occupied
    start = first + shift_us // slot
    first_day = start // per_day
    lead = start - first_day * per_day
    width = -(-(lead + slots) // per_day) * per_day
    padded = np.zeros((len(bits), width), dtype=np.bool_)
    padded[:, lead : lead + slots] = occupied
    return first_day, cast(Bools, padded.reshape(len(bits), -1, per_day).any(axis=2))


def occupancy(entries: Sequence[Entry], names: Strings, lo: int, hi: int, shift_us: int) -> Bools:
    """A (``names``, days ``lo``..``hi``) mask of the days on which each of the sorted
    ``names`` has a bar in any of ``entries``."""
    out = np.zeros((len(names), max(hi - lo, 0)), dtype=np.bool_)
    row_of = {name: i for i, name in enumerate(names.tolist())}
    # Entries of one shape (one month of many symbols' files) are unpacked together: per
    # entry, numpy's call overhead would cost more than the work.
    shapes: dict[tuple[int, int, int], tuple[list[Indices], list[npt.NDArray[np.uint8]]]] = {}
    every = np.arange(len(names), dtype=np.intp)
    for entry in entries:
        if len(entry.names) == 1:
            i = row_of.get(str(entry.names[0]))
            if i is None:
                continue
            dest, bits = np.array([i], dtype=np.intp), entry.bits
        elif len(entry.names) == len(names) and (entry.names == names).all():
            dest, bits = every, entry.bits  # a whole year file of a whole-lake query
        else:
            dest, rows = entry.rows_of(names)
            if not len(dest):
                continue
            bits = entry.bits[rows]
        group = shapes.setdefault((entry.first, entry.slots, entry.slot_us), ([], []))
        group[0].append(dest)
        group[1].append(bits)
    for (first, slots, slot), (dests, masks) in shapes.items():
        dest = np.concatenate(dests)
        first_day, days = by_day(np.concatenate(masks), first, slots, slot, shift_us)
        a, b = max(first_day, lo), min(first_day + days.shape[1], hi)
        if a >= b:
            continue
        part = days[:, a - first_day : b - first_day]
        if len(dest) == len(names) and (dest == every).all():
            out[:, a - lo : b - lo] |= part
        elif len(np.unique(dest)) == len(dest):
            out[dest, a - lo : b - lo] |= part
        else:  # one symbol in two files of the same period: only files from elsewhere do that
            np.logical_or.at(out[:, a - lo : b - lo], dest, part)
    return out


def build(symbol: pl.Series, ts: pl.Series, slot: int) -> Entry:
    """The entry of bars with these ``symbol`` and ``ts`` columns (grouped by symbol or not)."""
    if ts.null_count() or symbol.null_count():
        keep = ts.is_not_null() & symbol.is_not_null()
        symbol, ts = symbol.filter(keep), ts.filter(keep)
    if symbol.is_empty():
        return Entry(np.array([], dtype=str), np.zeros((0, 0), dtype=np.uint8), 0, 0, slot)
    slots = _micros(ts) // slot
    per_day = DAY_US // slot
    first = int(slots.min()) // per_day * per_day
    count = (int(slots.max()) // per_day + 1) * per_day - first
    one = symbol[0]
    if symbol[-1] == one and (symbol == one).all():  # an intraday file: one symbol
        occupied = np.zeros(count, dtype=np.bool_)
        occupied[slots - first] = True
        bits = np.packbits(occupied, bitorder="little").reshape(1, -1)
        return Entry(np.array([one], dtype=str), bits, first, count, slot)
    runs = symbol.rle_id().to_numpy()
    heads = symbol.gather(np.flatnonzero(np.diff(runs, prepend=-1)))
    if not (heads.slice(1) > heads.slice(0, len(heads) - 1)).all():
        # Not sorted by symbol: a file written by another tool.
        order = symbol.arg_sort()
        return build(symbol.gather(order), ts.gather(order), slot)
    occupied = np.zeros((len(heads), count), dtype=np.bool_)
    occupied[runs, slots - first] = True
    bits = np.packbits(occupied, axis=1, bitorder="little")
    return Entry(np.array(heads.to_list(), dtype=str), bits, first, count, slot)


def _entry_of(frame: pl.DataFrame, slot: int) -> Entry:
    """The entry of a data file's rows: only rows with a price are bars that occupy a slot."""
    if frame.select(PRICED.all()).item() is False:
        frame = frame.filter(PRICED)
    return build(frame.get_column("symbol"), frame.get_column("ts"), slot)


def _micros(ts: pl.Series) -> npt.NDArray[np.int64]:
    """Bar starts as microseconds since 1970-01-01 (UTC for zoned times)."""
    if not isinstance(ts.dtype, pl.Datetime):
        ts = ts.cast(pl.Datetime("us"))
    elif ts.dtype.time_unit != "us":
        ts = ts.dt.cast_time_unit("us")
    # A cast to integers, not ``dt.epoch``: on zoned times that costs a hundred times more.
    return ts.cast(pl.Int64).to_numpy()


def encode(entry: Entry, version: Version) -> bytes | None:
    """The bytes of an entry file for the data file at ``version``, or None for names that
    fixed-width strings cannot hold or a version whose numbers take more than 64 bits."""
    names = entry.names
    if any("\x00" in name for name in names.tolist()):
        return None
    chars = max(names.dtype.itemsize // 4, 1)
    parts = [p.encode() if isinstance(p, str) else p for p in version]
    packing = "".join(f"{len(p)}s" if isinstance(p, bytes) else "q" for p in parts)
    try:
        stamp = packing.encode() + struct.pack("<" + packing, *parts)
        stamp += bytes(-len(stamp) % 8)  # keeps the names aligned
        header = _HEADER.pack(
            _MAGIC,
            _FORMAT,
            entry.slot_us,
            entry.first,
            entry.slots,
            len(names),
            chars,
            len(packing),
            len(stamp),
        )
    except struct.error:
        return None
    body = b"".join(
        (
            header,
            stamp,
            names.astype(f"<U{chars}").tobytes(),
            np.ascontiguousarray(entry.bits).tobytes(),
        )
    )
    return body + _CRC.pack(zlib.crc32(body))


def decode(raw: bytes) -> tuple[Version, Entry] | None:
    """The data file's version and the entry stored in ``raw``, or None when it is not a whole,
    valid entry."""
    if len(raw) < _HEADER.size + _CRC.size or raw[:4] != _MAGIC:
        return None
    (crc,) = _CRC.unpack_from(raw, len(raw) - _CRC.size)
    if zlib.crc32(memoryview(raw)[: -_CRC.size]) != crc:
        return None
    (file_format,) = struct.unpack_from("<H", raw, len(_MAGIC))
    version: Version | None
    if file_format == 1 and len(raw) >= _HEADER_1.size + _CRC.size:
        _, _, size, mtime, ino, slot, first, slots, count, chars = _HEADER_1.unpack_from(raw)
        version, at = (size, mtime, ino), _HEADER_1.size
    elif file_format == _FORMAT:
        _, _, slot, first, slots, count, chars, packing, length = _HEADER.unpack_from(raw)
        at = _HEADER.size + length
        version = _version(raw, packing, at) if at <= len(raw) - _CRC.size else None
    else:
        return None
    if version is None or slot <= 0 or DAY_US % slot or slots < 0 or chars < 1:
        return None
    width = (slots + 7) // 8
    bits_at = at + count * chars * 4
    if len(raw) - _CRC.size - bits_at != count * width:
        return None
    names = np.frombuffer(raw, dtype=f"<U{chars}", count=count, offset=at)
    bits = np.frombuffer(raw, dtype=np.uint8, count=count * width, offset=bits_at)
    return version, Entry(names, bits.reshape(count, width), first, slots, slot)


def _version(raw: bytes, packing: int, end: int) -> Version | None:
    """The version ``encode`` wrote after the header: ``packing`` bytes of ``struct`` format,
    then the packed parts, all before ``end``; None when it is not one."""
    at = _HEADER.size + packing
    try:
        form = "<" + raw[_HEADER.size : at].decode("ascii")
        if form.strip("<0123456789qs") or at + struct.calcsize(form) > end:
            return None
        values = struct.unpack_from(form, raw, at)
        if "s" in form:
            return tuple(v.decode() if isinstance(v, bytes) else v for v in values)
    except (UnicodeDecodeError, struct.error):
        return None
    return cast(Version, values)


class DayIndex:
    """The entries of one lake's data files, under ``root``; ``bars`` is the data's root, and
    ``fs`` holds both."""

    def __init__(self, root: Path, bars: Path, *, fs: FileSystem) -> None:
        self.root = root
        self.bars = bars
        self.fs = fs
        self._bars = str(bars) + os.sep

    def path(self, data: Path | str) -> Path:
        """Where the entry of the data file ``data`` lives."""
        return Path(self._path(str(data)))

    def _path(self, data: str) -> str:
        # String slicing: a gap query maps hundreds of paths, and pathlib would dominate it.
        if not data.startswith(self._bars):
            data = str(Path(data).relative_to(self.bars))
        else:
            data = data[len(self._bars) :]
        return os.path.join(self.root, os.path.dirname(data) + SUFFIX)

    def record(
        self, data: Path | str, version: Version, interval: Interval, frame: pl.DataFrame
    ) -> None:
        """Store the entry of ``frame``, the bars just written to ``data`` at ``version``."""
        self._save(data, version, _entry_of(frame, slot_us(interval)))

    def entries(self, interval: Interval, files: Sequence[str]) -> list[Entry]:
        """The entries of ``files`` (data files of ``interval``), stale ones rebuilt from the
        Parquet files and stored again. Files that do not exist (any more) count as empty."""
        out: list[Entry] = []
        stale: list[str] = []
        slot = slot_us(interval)
        for data in files:
            try:
                version = self.fs.version(data)
            except (FileNotFoundError, NotADirectoryError):
                continue
            found = self._load(data)
            if found is None or found[0] != version or found[1].slot_us != slot:
                stale.append(data)
            else:
                out.append(found[1])
        if len(stale) > 1:
            with ThreadPoolExecutor(max_workers=REBUILD_THREADS) as pool:
                rebuilt = list(pool.map(lambda p: self._rebuild(p, slot), stale))
        else:
            rebuilt = [self._rebuild(p, slot) for p in stale]
        return out + [e for e in rebuilt if e is not None]

    def drop(self, data: Path | str) -> None:
        """Forget the entry of ``data`` (the data file was removed)."""
        self.fs.remove(self.path(data), up_to=self.root)

    def _load(self, data: str) -> tuple[Version, Entry] | None:
        try:
            with self.fs.open(self._path(data)) as fh:
                raw = fh.read()
        except OSError:
            return None
        return decode(raw)

    def _rebuild(self, data: str, slot: int) -> Entry | None:
        try:
            before = self.fs.version(data)
            with self.fs.open(data) as fh:
                frame = pl.read_parquet(fh, columns=[*KEY, *PRICES], hive_partitioning=False)
            after = self.fs.version(data)
        except FileNotFoundError:
            return None
        except (OSError, pl.exceptions.ComputeError, pl.exceptions.ColumnNotFoundError) as exc:
            msg = f"cannot read {data}: {exc}; move the file aside and fill again"
            raise StorageError(msg) from exc
        entry = _entry_of(frame.with_columns(pl.col("symbol").cast(pl.String)), slot)
        if before == after:  # else the file changed while read: use the entry, store none
            self._save(data, before, entry)
        return entry

    def _save(self, data: Path | str, version: Version, entry: Entry) -> None:
        """Replace the entry file atomically; failing to is harmless (the entry stays stale)."""
        raw = encode(entry, version)
        if raw is None:
            self.drop(data)
            return
        with contextlib.suppress(StorageError):
            self.fs.put(self.path(data), raw)
