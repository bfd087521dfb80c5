"""Chinese-aware chunking of one version: a profile chunk (title, synonyms, summary, facts) and body
chunks cut at sentence ends (。！？；), each carrying the title."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CHUNK_CHARS = 300
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


def _markdown_to_text(body: str) -> str:
    # Headings, list bullets and emphasis marks are noise for matching; keep the words.
    text = re.sub(r"^\s{0,3}#{1,6}\s*", "", body, flags=re.M)
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)、])\s+", "", text, flags=re.M)
    text = re.sub(r"[*_`>|]+", " ", text)
    return text


def chunk_version(content: Mapping[str, Any], *, max_chars: int = DEFAULT_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of one version's content (title, synonyms, summary, facts, body)."""
    title = content["title"].strip()
    profile = [title]
    if content.get("synonyms"):
        profile.append("又称：" + "、".join(content["synonyms"]))
    if content.get("summary"):
        profile.append(content["summary"].strip())
    facts = content.get("facts") or {}
    if facts:
        profile.append("；".join(f"{k}：{v.get('value', '')}{v.get('unit') or ''}" for k, v in facts.items()))
    chunks = [Chunk(0, "\n".join(profile))]
    body = _markdown_to_text(content.get("body") or "").strip()
    if body and body != title:
        for piece in _pack(split_sentences(body), max_chars):
            chunks.append(Chunk(len(chunks), f"{title}\n{piece}"))
    return chunks
