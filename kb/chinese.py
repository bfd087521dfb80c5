"""Traditional → simplified Chinese (OpenCC t2s) with a fast path for text that has nothing to convert.

The pure-Python OpenCC costs ≈ 1 ms per 200 characters, and most knowledge-base text is already
simplified. OpenCC only changes a text when one of its dictionary keys that maps to something else
occurs in it whole; every such key has a "witness" character (one it changes, or else one that does not
appear in its value). Text containing no witness character cannot change, so it is returned as is;
anything else goes through OpenCC. Same output as OpenCC, checked in tests/ingestion/test_attachments.py. Short texts
(titles, names, spoken turns) recur in every search's hits and are converted once.
"""
from __future__ import annotations

import threading
from functools import lru_cache

from opencc import OpenCC

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _converter() -> tuple[OpenCC, frozenset[str]]:
    # t2s, not tw2sp: tw2sp's Taiwan-phrase table also rewrites mainland text (程序→进程).
    converter = OpenCC("t2s")
    converter.convert("漢")  # loads the dictionaries
    witnesses: set[str] = set()
    for chain in converter._dict_chain_data:  # noqa: SLF001 - the dictionaries OpenCC just loaded
        groups = chain if isinstance(chain, list) else [chain]
        for group in groups:
            table = group[2] if isinstance(group, tuple) else group
            for key, value in table.items():
                if key == value:
                    continue
                if len(key) == len(value):
                    witnesses.add(next(k for k, v in zip(key, value) if k != v))
                else:
                    witnesses.add(next((k for k in key if k not in value), key[0]))
    return converter, frozenset(witnesses)


SHORT = 64  # texts up to this long (titles, names, spoken turns) are converted once and remembered


def to_simplified(text: str) -> str:
    """Traditional → simplified (OpenCC t2s); text without any convertible character is returned unchanged."""
    if not text:
        return text
    converter, witnesses = _converter()
    if witnesses.isdisjoint(text):
        return text
    if len(text) <= SHORT:  # the same titles recur in every search's hits
        return _convert_short(text)
    with _lock:
        return converter.convert(text)


@lru_cache(maxsize=8192)
def _convert_short(text: str) -> str:
    with _lock:
        return _converter()[0].convert(text)
