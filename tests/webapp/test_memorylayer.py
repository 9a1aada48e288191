"""The embedded default's channel layer (webapp.memorylayer): channels' in-memory layer with
its expiry pass at most once a second, and a group send that reaches every member."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from webapp import memorylayer
from webapp.memorylayer import InMemoryChannelLayer


def test_the_embedded_default_uses_it():
    assert isinstance(get_channel_layer(), InMemoryChannelLayer)


async def test_a_group_send_reaches_every_member_once_and_in_order():
    layer = InMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("run.1", channel)
    await layer.group_add("run.2", channels[0])
    for n in range(3):
        await layer.group_send("run.1", {"type": "run.events", "n": n})
    await layer.group_send("run.2", {"type": "run.events", "n": "other"})
    for index, channel in enumerate(channels):
        got = [(await layer.receive(channel))["n"] for _ in range(3 + (index == 0))]
        assert got == ([0, 1, 2, "other"] if index == 0 else [0, 1, 2])


async def test_a_full_member_loses_the_message_and_the_others_still_get_it():
    layer = InMemoryChannelLayer(capacity=1)
    slow, quick = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, quick):
        await layer.group_add("run.1", channel)
    await layer.group_send("run.1", {"type": "run.events", "n": 1})
    assert (await layer.receive(quick))["n"] == 1
    await layer.group_send("run.1", {"type": "run.events", "n": 2})  # slow is full
    assert (await layer.receive(quick))["n"] == 2
    assert (await layer.receive(slow))["n"] == 1
    assert layer.channels.get(slow) is None or layer.channels[slow].empty()


async def test_expired_messages_and_memberships_go_at_most_a_pass_late(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(memorylayer.time, "monotonic", lambda: clock[0])
    layer = InMemoryChannelLayer(expiry=60)
    gone, member = await layer.new_channel(), await layer.new_channel()
    for channel in (gone, member):
        await layer.group_add("run.1", channel)
    await layer.send(gone, {"type": "run.events", "n": 1})
    # Its message expires unread: the next pass drops it, and the channel from its groups.
    await layer.group_send("run.1", {"type": "run.events", "n": 2})  # first pass: nothing due
    stale = layer.channels[gone]._queue
    stale[0] = (0.0, stale[0][1])  # as if sent long ago
    clock[0] += memorylayer.CLEAN_EVERY_S / 2
    await layer.group_send("run.1", {"type": "run.events", "n": 3})  # no pass yet
    assert gone in layer.groups["run.1"]
    clock[0] += memorylayer.CLEAN_EVERY_S
    await layer.group_send("run.1", {"type": "run.events", "n": 4})  # a pass
    assert gone not in layer.groups["run.1"]
    assert member in layer.groups["run.1"]
    async with asyncio.timeout(5):
        got = [(await layer.receive(member))["n"] for _ in range(3)]
    assert got == [2, 3, 4]
