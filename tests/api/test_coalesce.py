"""Identical reads arriving together share one computation, and none gets an answer older
than itself."""

from __future__ import annotations

import asyncio
import threading

import pytest

from barlake.api.coalesce import Coalescer


def test_reads_that_arrive_while_one_waits_share_its_computation() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def compute() -> int:
        gate.wait(5)
        calls.append(len(calls))
        return len(calls)

    async def main() -> list[int]:
        reads = Coalescer()
        first = asyncio.ensure_future(reads.run("k", compute))
        await asyncio.sleep(0.05)  # the first computation is running, blocked on the gate
        later = [asyncio.ensure_future(reads.run("k", compute)) for _ in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await t for t in later]]

    answers = asyncio.run(main())
    # The ten that came while the first ran did not take its (older) answer: they waited for a
    # second computation, which they shared.
    assert calls == [0, 1]
    assert answers == [1] + [2] * 10


def test_different_keys_do_not_share() -> None:
    async def main() -> list[str]:
        reads = Coalescer()
        return list(await asyncio.gather(*(reads.run(k, lambda k=k: k * 2) for k in "abc")))

    assert asyncio.run(main()) == ["aa", "bb", "cc"]


def test_an_error_reaches_every_caller_of_its_round_and_the_next_round_runs_again() -> None:
    calls: list[str] = []

    def failing() -> None:
        calls.append("x")
        msg = "unknown symbol NOPE"
        raise ValueError(msg)

    async def main() -> None:
        reads = Coalescer()
        outcomes = await asyncio.gather(
            *(reads.run("k", failing) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, ValueError) and "NOPE" in str(o) for o in outcomes)
        assert calls == ["x"]
        with pytest.raises(ValueError, match="NOPE"):
            await reads.run("k", failing)
        assert calls == ["x", "x"]

    asyncio.run(main())


def test_a_caller_that_leaves_does_not_take_the_answer_from_the_others() -> None:
    gate = threading.Event()

    def compute() -> str:
        gate.wait(5)
        return "answer"

    async def main() -> str:
        reads = Coalescer()
        leaving = asyncio.ensure_future(reads.run("k", compute))
        staying = asyncio.ensure_future(reads.run("k", compute))
        await asyncio.sleep(0.05)
        leaving.cancel()
        gate.set()
        return await staying

    assert asyncio.run(main()) == "answer"
