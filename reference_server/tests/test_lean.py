"""The lean Event and Queue stand-ins behave as the asyncio originals do for their users."""

from __future__ import annotations

import asyncio

import pytest

from reference_server.lean import Flag, Inbox


async def test_every_waiter_wakes_when_the_flag_is_set_and_a_cancelled_one_does_not_matter() -> (
    None
):
    flag = Flag()
    first = asyncio.create_task(flag.wait())
    second = asyncio.create_task(flag.wait())
    doomed = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    flag.set()
    assert list(await asyncio.wait_for(asyncio.gather(first, second), 1)) == [True, True]
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_set_flag_does_not_wait_and_a_cleared_one_waits_again() -> None:
    flag = Flag(True)
    assert await asyncio.wait_for(flag.wait(), 1)
    flag.clear()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done() and not flag.is_set()
    flag.set()
    assert await asyncio.wait_for(waiter, 1)


async def test_the_inbox_hands_items_out_in_order_and_wakes_its_reader() -> None:
    inbox: Inbox[int] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done() and inbox.empty()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await asyncio.wait_for(reader, 1) == 1
    assert inbox.qsize() == 1 and await inbox.get() == 2 and inbox.empty()


async def test_a_cancelled_read_loses_nothing() -> None:
    inbox: Inbox[str] = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("kept")
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"
