"""Dialogue evaluation of the live sidebar: play scripted conversations through the topic tracker and
score the cards at labelled checkpoints (recall@3, hit@3), stability on unlabelled customer turns and
the time per utterance."""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kb.errors import ValidationFailed
from retrieval.topics import AGENT, CUSTOMER, TopicState, TopicTracker

SPEAKERS = {"C": CUSTOMER, "A": AGENT, "customer": CUSTOMER, "agent": AGENT}


@dataclass(frozen=True)
class Dialog:
    id: str
    turns: list[tuple[str, str]]  # (speaker, text)
    expected: dict[int, list[str]]  # customer turn index -> relevant ids


@dataclass
class TurnResult:
    index: int
    speaker: str
    text: str
    cards: list[str]
    changed: bool
    ms: float


@dataclass
class DialogResult:
    id: str
    turns: list[TurnResult] = field(default_factory=list)
    expected: dict[int, list[str]] = field(default_factory=dict)


def parse_dialog(line: dict[str, Any], number: int) -> Dialog:
    """Check one dialogue line; a bad one is an error naming the line and the field."""
    def bad(fld: str, message: str) -> ValidationFailed:
        return ValidationFailed(f"对话第 {number} 行 {fld}: {message} (dialog line {number})",
                                errors=[{"field": fld, "message": message, "line": number}])

    turns = line.get("turns")
    if not isinstance(turns, list) or not turns:
        raise bad("turns", "须为非空列表 must be a non-empty list")
    parsed = []
    for i, turn in enumerate(turns):
        speaker = SPEAKERS.get(str((turn or {}).get("speaker", "")))
        if speaker is None or not isinstance(turn.get("text"), str):
            raise bad(f"turns[{i}]", "speaker 须为 C 或 A，text 须为字符串 speaker must be C or A, text a string")
        parsed.append((speaker, turn["text"]))
    expected: dict[int, list[str]] = {}
    for j, point in enumerate(line.get("expected") or []):
        at = point.get("after_turn") if isinstance(point, dict) else None
        if not isinstance(at, int) or not 0 <= at < len(parsed) or parsed[at][0] != CUSTOMER:
            raise bad(f"expected[{j}].after_turn", "须指向一个客户轮次 must index a customer turn")
        ids = point.get("relevant_ids")
        if not isinstance(ids, list) or not ids:
            raise bad(f"expected[{j}].relevant_ids", "须为非空列表 must be a non-empty list")
        expected[at] = [str(x) for x in ids]
    return Dialog(str(line.get("id", number)), parsed, expected)


def play_dialog(dialog: Dialog, tracker: TopicTracker, *, name: Callable[[str], str] = str) -> DialogResult:
    """Every turn through a fresh conversation state, as final utterances; cards named by `name`."""
    state = TopicState()
    result = DialogResult(dialog.id, expected=dialog.expected)
    for index, (speaker, text) in enumerate(dialog.turns):
        outcome = tracker.observe(state, speaker=speaker, text=text)
        result.turns.append(TurnResult(index, speaker, text, [name(c.entry_id) for c in outcome.cards],
                                       outcome.changed, outcome.took_ms))
    return result


def score_dialogs(results: Sequence[DialogResult], *, max_cards: int = 3) -> dict[str, Any]:
    """n_checkpoints, recall@3, hit@3, stable_ratio, p50/p95 ms per utterance (and counts behind them)."""
    k = min(3, max_cards)
    recalls, hits, stable, unlisted, latencies = [], [], 0, 0, []
    for result in results:
        before: set[str] = set()
        for turn in result.turns:
            latencies.append(turn.ms)
            after = set(turn.cards)
            if turn.speaker == CUSTOMER:
                relevant = result.expected.get(turn.index)
                if relevant is not None:
                    top = set(turn.cards[:k])
                    found = sum(1 for r in set(relevant) if r in top)
                    recalls.append(found / len(set(relevant)))
                    hits.append(1.0 if found else 0.0)
                else:
                    unlisted += 1
                    stable += after == before
            before = after
    latencies.sort()
    n = len(latencies)
    return {
        "n_dialogs": len(results),
        "n_checkpoints": len(recalls),
        "recall@3": round(sum(recalls) / len(recalls), 4) if recalls else None,
        "hit@3": round(sum(hits) / len(hits), 4) if hits else None,
        "n_unlisted_customer_turns": unlisted,
        "stable_ratio": round(stable / unlisted, 4) if unlisted else None,
        "n_utterances": n,
        "p50_ms": round(statistics.median(latencies), 2) if n else None,
        "p95_ms": round(latencies[min(n - 1, math.ceil(0.95 * n) - 1)], 2) if n else None,
    }


def misses(results: Sequence[DialogResult], *, max_cards: int = 3) -> list[dict[str, Any]]:
    """Checkpoints not fully found and unlisted turns that moved the cards — for reading, not scoring."""
    out = []
    for result in results:
        before: set[str] = set()
        for turn in result.turns:
            relevant = result.expected.get(turn.index)
            top = turn.cards[: min(3, max_cards)]
            if relevant is not None and not set(relevant) <= set(top):
                out.append({"dialog": result.id, "turn": turn.index, "kind": "miss", "text": turn.text,
                            "expected": relevant, "cards": top})
            elif relevant is None and turn.speaker == CUSTOMER and set(turn.cards) != before:
                out.append({"dialog": result.id, "turn": turn.index, "kind": "flicker", "text": turn.text,
                            "cards": top})
            before = set(turn.cards)
    return out
