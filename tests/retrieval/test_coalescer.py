"""The live-conversation gate: one utterance per conversation at a time, a bounded number of lanes
shared by all conversations, partials coalesced when there is no room for them."""
from __future__ import annotations

import threading
import time

import pytest

from api.runtime import Runtime
from kb.errors import Unavailable
from kb.settings import Settings
from retrieval.conversations import Coalescer


def test_finals_of_many_conversations_are_worked_on_a_few_at_a_time():
    coalescer = Coalescer(lanes=2)
    inside, most, guard = 0, 0, threading.Lock()

    def utterance(conversation_id: str) -> None:
        nonlocal inside, most
        with coalescer.final(conversation_id):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=utterance, args=(f"c{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 2 and inside == 0
    assert coalescer.finals_running() == 0


def test_a_final_that_finds_no_lane_in_time_is_refused_as_busy():
    coalescer = Coalescer(lanes=1, wait_s=0.05)
    with coalescer.final("first"):
        with pytest.raises(Unavailable, match="繁忙"):
            with coalescer.final("second"):
                pass
        assert coalescer.finals_running() == 1  # the refused one no longer counts
    with coalescer.final("second") as looked_at:  # the lane is free again
        assert looked_at


def test_a_partial_without_a_free_lane_is_answered_unread():
    coalescer = Coalescer(lanes=1)
    with coalescer.final("other"):
        with coalescer.partial("mine", ("房贷",)) as looked_at:
            assert not looked_at
    with coalescer.partial("mine", ("房贷",)) as looked_at:
        assert looked_at


def test_the_lanes_come_from_the_settings():
    runtime = Runtime(settings=Settings(live_lanes=1), engine=None)  # type: ignore[arg-type]
    runtime.coalescer.wait_s = 0.05
    with runtime.coalescer.final("a"), pytest.raises(Unavailable):
        with runtime.coalescer.final("b"):
            pass
