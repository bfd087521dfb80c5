"""Chinese text for search: normalisation, jieba with a finance dictionary, BM25-style sparse vectors."""
from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import jieba

from kb import chinese

from retrieval.index.base import SparseVec

FINANCE_DICT = Path(__file__).parent / "finance_dict.txt"
MAX_QUERY_CHARS = 512

_WORD = re.compile(r"[\w\u3400-\u9fff]+")
_HAN = re.compile(r"[\u3400-\u9fff]")
_SPACE = re.compile(r"\s+")
# Particles and filler that carry no meaning for matching; IDF would shrink them anyway, but
# dropping them keeps sparse vectors short.
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 嘛 哦 哈 之 而 与 及 或 和 在 是 就 都 也 还 又 被 把 给 让 向 对 从 "
    "我 你 您 他 她 它 我们 你们 请问 请 一下 这个 那个 这 那 哪 个 什么 怎么 怎样 如何 为什么 "
    "可以 能 能否 是否 有没有 要 想 需要 应该 a an the of to is are do does how what i you".split()
)

def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (OpenCC t2s), nothing else changed; already-simplified text skips OpenCC."""
    return chinese.to_simplified(text)


def normalize(text: str, *, lower: bool = True) -> str:
    """Traditional → simplified, full-width → half-width (NFKC), lower case, one space between words."""
    text = to_simplified(unicodedata.normalize("NFKC", text))
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if lower else text


def has_content(text: str) -> bool:
    """True when the text has at least one letter, digit or Han character to search for."""
    return bool(_WORD.search(normalize(text)))


def term_id(term: str) -> int:
    """A stable 31-bit id for a term (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big") & 0x7FFFFFFF


class Analyzer:
    """Tokenises normalised text with jieba (search mode) and builds sparse term-frequency vectors.

    Words come from jieba's search mode (long words and their parts) plus Han character bigrams,
    which keep matching robust when a customer writes a word the dictionary splits differently.
    """

    def __init__(self, *, extra_words: Iterable[str] = (), bigrams: bool = True, k1: float = 1.2, b: float = 0.75,
                 avg_len: float = 80.0) -> None:
        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        self._jieba.initialize()
        self._lock = threading.Lock()
        self.bigrams, self.k1, self.b, self.avg_len = bigrams, k1, b, avg_len
        for word in _dictionary_words():
            self._jieba.add_word(word, freq=50_000)
        self.add_words(extra_words)

    def add_words(self, words: Iterable[str]) -> None:
        """Teach the tokenizer product names, synonyms and tags from the knowledge base."""
        with self._lock:
            for word in words:
                word = normalize(word)
                # once: jieba adds every call's frequency to its total, so re-adding the knowledge base's words
                # at each refresh would shift how all text is cut
                if 2 <= len(word) <= 20 and " " not in word and self._jieba.FREQ.get(word) != 20_000:
                    self._jieba.add_word(word, freq=20_000)

    def tokens(self, text: str) -> list[str]:
        """Terms of already-normalised text: jieba words (no stopwords) and Han bigrams."""
        with self._lock:
            words = [w.strip() for w in self._jieba.cut_for_search(text)]
        terms = []
        for w in words:
            if not w or w in STOPWORDS:
                continue
            if _WORD.fullmatch(w):
                terms.append(w)
            elif _WORD.search(w):  # a dictionary word with a sign in it (e-cny, t+1): itself and its parts
                terms.extend([w, *(p for p in _WORD.findall(w) if p not in STOPWORDS)])
        if self.bigrams:
            for run in re.findall(r"[\u3400-\u9fff]{2,}", text):
                terms.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
        return terms

    def document_vector(self, text: str) -> SparseVec:
        """BM25 term-frequency part for a passage (the index applies IDF)."""
        counts = Counter(self.tokens(normalize(text)))
        length = sum(counts.values()) or 1
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
        weights: dict[int, float] = {}
        for term, tf in counts.items():
            tid = term_id(term)
            weights[tid] = weights.get(tid, 0.0) + tf * (self.k1 + 1) / (tf + norm)
        return SparseVec.from_dict(weights)

    def query_vector(self, normalized_query: str) -> SparseVec:
        """One weight per distinct query term (bigrams count half), IDF applied by the index."""
        weights: dict[int, float] = {}
        for term in self.tokens(normalized_query):
            weights[term_id(term)] = 0.5 if term.startswith("#") else 1.0
        return SparseVec.from_dict(weights)


@lru_cache(maxsize=1)
def _dictionary_words() -> tuple[str, ...]:
    words = []
    for line in FINANCE_DICT.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(normalize(line))
    return tuple(words)


def truncate_query(text: str, limit: int = MAX_QUERY_CHARS) -> str:
    """Keep the end of an over-long query: in a long story the question usually comes last."""
    return text if len(text) <= limit else text[-limit:]
