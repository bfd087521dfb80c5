"""Chinese-aware chunking of one version. The lead chunk is the entry's profile (title, synonyms,
summary, facts) followed by the start of the body; the rest of the body follows in chunks cut at
sentence ends (。！？；), each carrying the title. Chunk text is in simplified Chinese.
An entry's names (title, synonyms, summary) are also listed one by one for question-to-name matching."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retrieval.text import normalize, to_simplified

DEFAULT_CHUNK_CHARS = 300
MAX_NAMES = 32  # names kept per version (title first, then synonyms, then the summary)
NAME_CHARS = 200  # a longer name (a long summary) is cut here
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")


@dataclass(frozen=True, slots=True)
class Chunk:
    number: int
    text: str


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _pack(sentences: list[str], limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > limit:  # a run-on sentence: hard cut, nothing dropped
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:limit])
            sentence = sentence[limit:]
        if current and len(current) + len(sentence) > limit:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return pieces


def _lead(sentences: list[str], room: int) -> tuple[str, list[str]]:
    """The body's first sentences that fit in `room` chars, and the rest. A first sentence longer
    than the room is cut rather than skipped, so the lead chunk always holds the start of the body."""
    taken = ""
    rest = list(sentences)
    while rest and len(taken) + len(rest[0]) <= room:
        taken += rest.pop(0)
    if not taken and rest and room > 0:
        taken, rest[0] = rest[0][:room], rest[0][room:]
    return taken, rest


def _markdown_to_text(body: str) -> str:
    # Headings, list bullets and emphasis marks are noise for matching; keep the words.
    text = re.sub(r"^\s{0,3}#{1,6}\s*", "", body, flags=re.M)
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)、])\s+", "", text, flags=re.M)
    text = re.sub(r"[*_`>|]+", " ", text)
    return text


def chunk_version(content: Mapping[str, Any], *, max_chars: int = DEFAULT_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of one version's content (title, synonyms, summary, facts, body).

    The profile does not stand alone: a title-only (or title + synonyms) vector is short and generic,
    so it sits close to many unrelated questions and outranked the right entry in measurement; filled
    up with the start of the body (where FAQ answers and product overviews put the gist) it matches
    what the entry is about. Text is simplified Chinese because that is what queries are normalised
    to: the embedder then compares like with like (Traditional-script entries lost ~17 points of
    dense hit@1 on E.SUN otherwise); the stored entry keeps its original script.
    """
    title = content["title"].strip()
    profile = [title]
    if content.get("synonyms"):
        profile.append("又称：" + "、".join(content["synonyms"]))
    if content.get("summary"):
        profile.append(content["summary"].strip())
    facts = content.get("facts") or {}
    if facts:
        profile.append("；".join(f"{k}：{v.get('value', '')}{v.get('unit') or ''}" for k, v in facts.items()))
    head = "\n".join(profile)
    body = _markdown_to_text(content.get("body") or "").strip()
    if not body or body == title:
        return [Chunk(0, to_simplified(head))]
    lead, rest = _lead(split_sentences(body), max_chars - len(head) - 1)
    texts = [f"{head}\n{lead}" if lead else head]
    texts.extend(f"{title}\n{piece}" for piece in _pack(rest, max_chars))
    return [Chunk(number, to_simplified(text)) for number, text in enumerate(texts)]


def entry_names(content: Mapping[str, Any]) -> list[str]:
    """What a version is called and said to be — title, each synonym, the summary — one text each,
    normalised as queries are (simplified script, half-width, single spaces), duplicates dropped.

    Each is embedded as a *query* and matched against the customer's question as question to
    question: a short synonym such as 「卡丢了」 or an FAQ title such as 「贷款申请后多久有结果？」 is
    closest to a question phrased like it, which its place inside a long passage chunk hides.
    """
    names = [content.get("title") or "", *(content.get("synonyms") or []), content.get("summary") or ""]
    out: list[str] = []
    for name in names:
        text = normalize(str(name), lower=False)[:NAME_CHARS].strip()
        if text and text not in out:
            out.append(text)
    return out[:MAX_NAMES]
