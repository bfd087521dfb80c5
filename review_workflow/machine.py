"""The update-pack lifecycle as a transition table; the only code that changes a pack's state."""
from __future__ import annotations

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from kb.errors import InvalidTransition
from review_workflow.models import PackState, UpdatePack


class PackMachine(StateMachine):
    """draft → submitted → approved → (scheduled →) published; submitted → rejected → draft;
    draft / submitted → withdrawn. Editing a draft or a submitted pack keeps its state (a submitted
    pack's new revision goes back to review)."""

    draft = State(PackState.DRAFT.value, value=PackState.DRAFT.value, initial=True)
    submitted = State(PackState.SUBMITTED.value, value=PackState.SUBMITTED.value)
    approved = State(PackState.APPROVED.value, value=PackState.APPROVED.value)
    scheduled = State(PackState.SCHEDULED.value, value=PackState.SCHEDULED.value)
    published = State(PackState.PUBLISHED.value, value=PackState.PUBLISHED.value, final=True)
    rejected = State(PackState.REJECTED.value, value=PackState.REJECTED.value)
    withdrawn = State(PackState.WITHDRAWN.value, value=PackState.WITHDRAWN.value, final=True)

    edit = draft.to.itself(internal=True) | submitted.to.itself(internal=True)
    submit = draft.to(submitted)
    approve = submitted.to(approved)
    reject = submitted.to(rejected)
    revise = rejected.to(draft)
    withdraw = draft.to(withdrawn) | submitted.to(withdrawn)
    schedule = approved.to(scheduled)
    publish = approved.to(published) | scheduled.to(published)


EVENTS = ("edit", "submit", "approve", "reject", "revise", "withdraw", "schedule", "publish")


def fire(pack: UpdatePack, event: str) -> str:
    """Apply `event` to the pack's state or raise InvalidTransition (state unchanged)."""
    machine = PackMachine(model=pack, state_field="state")
    try:
        machine.send(event)
    except TransitionNotAllowed:
        raise InvalidTransition(
            f"不允许的操作：更新包处于「{pack.state}」状态时不能 {event} — cannot {event} a pack in state {pack.state!r}",
            details={"pack_id": pack.id, "state": pack.state, "event": event},
        ) from None
    return pack.state


def allowed_events(state: str) -> list[str]:
    """Events the table allows from `state` (for pages that show only possible actions)."""
    for s in PackMachine.states:
        if s.value == state:
            return sorted({t.event for t in s.transitions})
    return []
