"""The pack lifecycle as a table: every (state, event) pair either moves to one state or is refused."""
from __future__ import annotations

import pytest

from kb.errors import InvalidTransition
from review_workflow.machine import EVENTS, allowed_events, fire
from review_workflow.models import UpdatePack

ALLOWED = {
    ("draft", "edit"): "draft",
    ("draft", "submit"): "submitted",
    ("draft", "withdraw"): "withdrawn",
    ("submitted", "edit"): "submitted",
    ("submitted", "approve"): "approved",
    ("submitted", "reject"): "rejected",
    ("submitted", "withdraw"): "withdrawn",
    ("rejected", "revise"): "draft",
    ("approved", "schedule"): "scheduled",
    ("approved", "publish"): "published",
    ("scheduled", "publish"): "published",
}
STATES = ("draft", "submitted", "approved", "scheduled", "published", "rejected", "withdrawn")


@pytest.mark.parametrize(("state", "event"), [(s, e) for s in STATES for e in EVENTS])
def test_transition_table(state, event):
    pack = UpdatePack(title="季度费率调整", submitter="expert", state=state)
    expected = ALLOWED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            fire(pack, event)
        assert pack.state == state
        assert caught.value.details == {"pack_id": pack.id, "state": state, "event": event}
    else:
        assert fire(pack, event) == expected
        assert pack.state == expected


def test_allowed_events_match_the_table():
    for state in STATES:
        assert allowed_events(state) == sorted(e for (s, e) in ALLOWED if s == state)
