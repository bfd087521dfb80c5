"""The dialogue evaluation: parsing with clear errors, the metrics on hand-made results, and
`zhiku eval conversations` end to end with the real model on the team's 40 dialogues."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kb.demo import DEMO_DIR, DEMO_ENTRIES
from kb.errors import ValidationFailed
from retrieval.dialogs import DialogResult, TurnResult, misses, parse_dialog, score_dialogs

DEV_DIALOGS = DEMO_DIR / "dialogs.jsonl"
BENCH_DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


@pytest.mark.parametrize("path", [DEV_DIALOGS, *sorted(BENCH_DATA.glob("dialogs_*.jsonl"))], ids=lambda p: p.name)
def test_the_dialogue_sets_parse_and_name_demo_entries(path):
    """The team's dialogues and the sets written apart from the code (docs/BENCHMARKS.md)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dialogs = [parse_dialog(line, n) for n, line in enumerate(lines, start=1)]
    assert len(dialogs) >= 24
    assert sum(len(d.expected) for d in dialogs) >= 90
    demo_ids = {entry.stem for entry in DEMO_ENTRIES.glob("*.md")}
    assert {i for d in dialogs for ids in d.expected.values() for i in ids} <= demo_ids


@pytest.mark.parametrize("line, field", [
    ({"id": "x", "turns": []}, "turns"),
    ({"id": "x", "turns": [{"speaker": "B", "text": "你好"}]}, "turns[0]"),
    ({"id": "x", "turns": [{"speaker": "C", "text": "你好"}, {"speaker": "A", "text": "您好"}],
      "expected": [{"after_turn": 1, "relevant_ids": ["KB-1"]}]}, "expected[0].after_turn"),
    ({"id": "x", "turns": [{"speaker": "C", "text": "你好"}], "expected": [{"after_turn": 0, "relevant_ids": []}]},
     "expected[0].relevant_ids"),
])
def test_bad_dialogue_lines_name_the_field(line, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_dialog(line, 7)
    assert caught.value.errors[0]["field"] == field and caught.value.errors[0]["line"] == 7


def turn(index, speaker, cards, ms=10.0):
    return TurnResult(index, speaker, "…", cards, False, ms)


def test_metrics_on_a_hand_made_result():
    result = DialogResult("d", expected={1: ["A", "B"], 4: ["C"]}, turns=[
        turn(0, "customer", []),            # unlisted, unchanged → stable
        turn(1, "customer", ["A", "X", "Y", "B"]),  # B is 4th: recall 1/2, hit
        turn(2, "agent", ["A", "X", "Y"]),
        turn(3, "customer", ["Z"]),         # unlisted, changed → not stable
        turn(4, "customer", ["C"], ms=100.0),  # recall 1
    ])
    report = score_dialogs([result])
    assert report["n_checkpoints"] == 2 and report["recall@3"] == 0.75 and report["hit@3"] == 1.0
    assert report["n_unlisted_customer_turns"] == 2 and report["stable_ratio"] == 0.5
    assert report["p95_ms"] == 100.0
    kinds = [(m["kind"], m["turn"]) for m in misses([result])]
    assert kinds == [("miss", 1), ("flicker", 3)]


def _eval_conversations(tmp_path, model_path, *, fields: tuple[str, ...] | None = None,
                        dialogs: Path = DEV_DIALOGS) -> dict:
    """`zhiku demo corpus` (optionally cut down to `fields`), then `zhiku eval conversations --json`."""
    corpus = tmp_path / "corpus.jsonl"
    env = {"ZHIKU_DATA_DIR": str(tmp_path / "data"), "ZHIKU_EMBED_MODEL": str(model_path), "PATH": "/usr/bin:/bin"}
    zhiku = [str(Path(sys.executable).parent / "zhiku")]
    root = Path(__file__).resolve().parents[2]
    subprocess.run([*zhiku, "demo", "corpus", str(corpus)], check=True, cwd=root, env=env, capture_output=True)
    if fields:
        rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
        corpus.write_text("".join(json.dumps({k: r[k] for k in fields}, ensure_ascii=False) + "\n" for r in rows),
                          encoding="utf-8")
    done = subprocess.run([*zhiku, "eval", "conversations", "--corpus", str(corpus), "--dialogs", str(dialogs), "--json"],
                          check=True, cwd=root, env=env, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_conversations_cli_with_the_real_model(tmp_path, model_path):
    report = _eval_conversations(tmp_path, model_path)
    assert report["n_dialogs"] == 40 and report["n_checkpoints"] >= 100
    # the default encoder: fp32 vectors of this model, named by its folder and fingerprint
    assert report["embedder"].startswith(f"{model_path.name}@") and not report["embedder"].endswith("+int8")
    # Floors a little under what docs/BENCHMARKS.md reports, so a regression fails the suite.
    assert report["recall@3"] >= RECALL_FLOOR and report["stable_ratio"] >= STABLE_FLOOR, report


@pytest.mark.slow
def test_eval_conversations_on_a_corpus_without_expert_metadata(tmp_path, model_path):
    """The documented corpus format's required fields only (no synonyms, tags, summary, links, category):
    the sidebar must still follow the conversation from what the entries' texts say."""
    report = _eval_conversations(tmp_path, model_path, fields=("id", "title", "text"))
    assert report["n_checkpoints"] >= 100
    assert report["recall@3"] >= BARE_RECALL_FLOOR and report["stable_ratio"] >= BARE_STABLE_FLOOR, report


@pytest.mark.slow
def test_eval_conversations_on_the_dialogues_written_blind(tmp_path, model_path):
    """The three sets written apart from the code, in one run: far below the team's own set (the search
    finds less of what customers who avoid the entries' words ask) — a floor so that tuning to the team's
    set cannot quietly cost unseen speech."""
    together = tmp_path / "blind.jsonl"
    sets = sorted(BENCH_DATA.glob("dialogs_heldout[234].jsonl"))
    together.write_text("".join(p.read_text(encoding="utf-8").rstrip("\n") + "\n" for p in sets), encoding="utf-8")
    report = _eval_conversations(tmp_path, model_path, dialogs=together)
    assert report["n_dialogs"] == 72 and report["n_checkpoints"] == 317
    assert report["recall@3"] >= BLIND_RECALL_FLOOR and report["stable_ratio"] >= BLIND_STABLE_FLOOR, report


RECALL_FLOOR = 0.84  # measured 0.871 (docs/BENCHMARKS.md)
STABLE_FLOOR = 0.88  # measured 0.915
BARE_RECALL_FLOOR = 0.69  # measured 0.710 (0.673 before entries' texts counted as topic words)
BARE_STABLE_FLOOR = 0.85  # measured 0.868
BLIND_RECALL_FLOOR = 0.62  # measured 0.648 (set 2: 0.682, set 3: 0.587, set 4: 0.675)
BLIND_STABLE_FLOOR = 0.70  # measured 0.732 (0.717, 0.788, 0.709)
