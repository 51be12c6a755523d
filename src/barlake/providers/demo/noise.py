"""Counter-based random numbers for the demo: a draw is a pure function of (seed, stream,
counter), so a bar is the same whichever request produced it, and a whole request's draws come
from a few numpy passes."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
MASK = (1 << 64) - 1

# SplitMix64: the state advances by GAMMA and mix scrambles it, so mix(base + i * GAMMA) is
# the i-th draw of the stream ``base``, computable for any i without drawing the ones before.
GAMMA = 0x9E3779B97F4A7C15
GOLDEN = np.uint64(GAMMA)
LANES_SD = math.sqrt(4 * (65536**2 - 1) / 12)  # sd of a sum of four uniform 16-bit integers


def mix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int (numpy scalars would warn on overflow)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def stream_base(seed: int, stream: int) -> int:
    """The key of one random stream of one symbol."""
    return mix_int(seed ^ mix_int((stream * GAMMA) & MASK))


def mix(x: U64) -> U64:
    """SplitMix64's finaliser on arrays, where uint64 arithmetic wraps silently."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


def counter_bits(base: int | U64, counter: I64) -> U64:
    """64 random bits for each counter of the stream(s) ``base``."""
    start = np.uint64(base) if isinstance(base, int) else base
    return mix(start + counter.astype(np.uint64) * GOLDEN)


def uniform(bits: U64, shift: int, width: int) -> F64:
    """Uniforms strictly inside (0, 1) from ``width`` bits of ``bits`` starting at ``shift``."""
    field = (bits >> np.uint64(shift)) & np.uint64((1 << width) - 1)
    return np.asarray((field.astype(np.float64) + 0.5) / float(1 << width), dtype=np.float64)


def gaussian(bits: U64) -> F64:
    """Near-standard normals: the sum of the four 16-bit lanes of ``bits``, centred and scaled.

    A sum of four uniforms (Irwin-Hall) is a few integer passes, several times cheaper than
    Box-Muller's log, sqrt and cos; its tails stop at 3.5 sd, which a demo does not miss.
    """
    pairs = (bits & np.uint64(0x0000FFFF0000FFFF)) + (
        (bits >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)
    )
    total = (pairs & np.uint64(0xFFFFFFFF)) + (pairs >> np.uint64(32))
    return np.asarray((total.astype(np.float64) - 131070.0) / LANES_SD, dtype=np.float64)
