"""Conversation topic tracking: which knowledge cards belong in the agent's sidebar after each turn.

One tracker per process, shared by all conversations; each conversation's memory is a `TopicState`
(plain data, stored as JSON with the conversation). A turn goes through four steps:

1. small talk, thanks, acknowledgements and identity answers are cut out clause by clause, and a
   turn that only asks the agent to wait says nothing — a turn with nothing left changes nothing;
   nor does a customer settling on something without asking ("好的 那我先分期吧");
2. the rest is searched on its own; a follow-up that leans on earlier turns ("那利率呢？", "那个理财怎么赎回") is searched
   again with the last customer topic and the product it refers to (the latest one mentioned whose
   name carries the reference's noun — 卡, 理财 — or else the latest one);
3. entries are scored by that search plus a recency-weighted window of earlier turns (customer
   turns weigh most, each older turn less); entries the experts linked to the leader gain a little;
4. hysteresis: the cards change only for something they do not already answer — a turn that
   opens a new matter ("对了", "另外", "还有就是"), a confident question of its own (a very confident
   one if it has no topic word), a turn whose own best entry is about a topic word the shown cards
   do not cover, or a new product — a topic that goes on keeps its cards, so the sidebar does not
   flicker.
   Topic words are the knowledge base's own vocabulary less everyday Chinese (jieba's IDF): the
   entries' headings (titles, synonyms, tags, summaries) for the hysteresis; a question using a word of
   their texts is not vague even where the headings are bare (a corpus of titles and bodies only).
"""
from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from retrieval.search import Blend, SearchResponse, Searcher
from retrieval.text import normalize

CUSTOMER, AGENT = "customer", "agent"

# Whole-clause filler removed before deciding whether a clause says anything: greetings, thanks,
# acknowledgements, waiting, closing, hesitation, identity answers. Content words stay.
_FILLER = re.compile(
    "|".join([
        r"喂+", r"[您你]好+", r"hello", r"hi", r"在吗", r"[早中晚]上好", r"下午好", r"早安", r"晚安",
        r"[多感]?谢谢?[您你]?(了|啦)?", r"感谢", r"麻烦[您你]了", r"辛苦[您你]?了", r"不客气", r"不好意思", r"抱歉",
        r"好[的滴吧呀啊嘞]*", r"嗯+", r"[哦噢喔唔啊呃额哎诶欸]+", r"是[的啊吗么]*", r"对[的啊呀]*", r"行[吧啊]*",
        r"可以[的啊]*", r"没问题", r"明白[了啦]*", r"知道[了啦]*", r"了解[了啦]*", r"懂[了啦]*", r"清楚[了啦]*",
        r"收到", r"ok(ay)?", r"原来(如此|是这样)", r"这样[啊呀子]*", r"那就这样", r"就这些", r"就这样",
        r"没有?[别其]?[的他]?[问题事]*了", r"没事了", r"再见", r"拜拜", r"bye",
        r"稍等(一下)?", r"等一?下", r"我(找|看|查|翻|想)一?下", r"您?说吧", r"请讲", r"您讲",
        r"那个", r"就是", r"然后", r"这个", r"呃", r"我想(问|咨询|了解)(一?下)?", r"(请问|问一?下|咨询一?下)",
        r"我(姓|叫)[\u4e00-\u9fff]{1,3}", r"[\u4e00-\u9fff]{1,2}(先生|女士|小姐|阿姨|叔叔)",
        r"(我的?)?(身份证|证件)(号码?)?(是|后[四4]位是?)?[\dxX*]{4,}",
        r"(身份证|证件|手机|电话)?(号码?)?(尾号|后[四六4-6]位)(是)?\d*", r"(我的?)?(手机|电话)(号码?)?(是)?1\d{10}",
        r"(出生|生日)(日期)?是?", r"[\d年月日号\-/.:：]+", r"本人", r"我是",
        r"[吗呢吧啊呀哈嘛啦了的]+",
    ]),
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"[，。！？!?；;,.、…~\s]+")
_HAN_OR_WORD = re.compile(r"[\u3400-\u9fffA-Za-z]")
# A reference back to something said earlier: "那个理财", "刚才说的", "它".
_ANAPHORA = re.compile(
    r"((那|这)[个款只笔张份]|(刚才|刚刚|之前|前面|上次|上回)(说|提|讲|买|办)?[的过了]*(那|这)?[个款只笔张份]?)"
    r"[^，。？！,.?!\s]{0,4}?(?P<noun>理财|产品|基金|保险|存单|卡|贷款?|金条|钱包|账户|存款)"
    r"|(买|办|存|借|投)的(那|这)[个款只笔张份]|^它|[，,\s]它")
# A customer who asks to wait ("稍等，我看下我的测评结果") is busy, not asking: unless the turn also asks
# or requests something, it changes nothing. A question may be A-not-A (开不开, 有没有, 安全不安全), a tag (是吧)
# or ask for confirmation (装修能用吧, 不会扣钱吧).
_WAITING = re.compile(r"稍等|等一?下|等等|我(找|看|查|翻|登|打开)[^，。？！,.?!\s]{0,8}?(一?下|看看)")
_ASKS = re.compile(
    r"[?？吗么嘛呢]|怎|什么|啥|多少|几|哪|谁|([\u4e00-\u9fff]{1,2})[不没]\1|可不可以|是吧|对吧|为啥|为什么|如何|咋|多久"
    r"|区别|能否|是否|行不|可以不|我要|帮我|给我|请帮"
    r"|((?<!可)能|可以|会)[^，。！？,.!?\s]{0,6}吧")
# A customer who settles on something ("好的 那我先分期吧", "行 那我先买二十万", "那就用积分抵吧") and asks
# nothing goes on with the matter the cards are for: the cards stay.
_SETTLES = re.compile(r"(^|[，。！,.!\s])([好行嗯哦]|好的|好吧|可以|明白了?|知道了?)?[，,\s]*那(么)?(我|就)")
# Words that open a new matter ("对了", "另外", "还有就是", "顺便问一下"): the turn asks something the
# cards shown so far were not for, even when it also refers back ("对了，刚才那张信用卡也要挂失吗") or follows
# a "那" ("OK 那另外问一下").
_TOPIC_TURN = re.compile(
    r"(^|[，。！？,.!?\s])([哦噢嗯啊哎诶好的是那]+[，,\s]*)?"
    r"(对了|另外|还有(就是|一?个事|一件事|一?个问题)|顺便|再问(一下|一?个)|换个(话题|问题)|另一个问题)")


@dataclass(frozen=True)
class TopicConfig:
    max_cards: int = 3
    window: int = 4  # earlier topical turns remembered
    decay: float = 0.5  # weight of a turn one step older
    prior_weight: float = 0.35  # weight of the window against the current turn
    context_weight: float = 1.0  # weight of the turn read with the last topic against the turn alone
    pick_context_weight: float = 0.3  # the same two weights when choosing the new cards
    pick_prior_weight: float = 0.15
    agent_weight: float = 0.4  # an agent turn counts this much of a customer turn
    partial_confident: float = 0.75  # a speech-recognition partial may change cards only above this
    candidates: int = 10
    confident: float = 0.6  # a turn this sure of an entry not shown moves the cards even without new words
    common_share: float = 0.2  # a word in more than this share of entries is no topic word
    general_idf: float = 5.5  # nor is a word common in general Chinese (jieba's IDF below this: 时候, 多少, 以后)
    lead_confident: float = 0.2  # a turn's own best entry, if it names a new topic word, moves the cards above this
    vague_confident: float = 0.9  # a turn without topic words moves the cards only this sure of an entry not shown
    products_remembered: int = 5
    # An entry the experts linked to the leading candidate ("related") gains this share of the
    # leader's score: 提前还款 brings 提前还房贷需要预约吗 with the process (0.1–0.3 scored alike on
    # the team's dialogues; see docs/BENCHMARKS.md).
    related_boost: float = 0.2


@dataclass(frozen=True)
class EntryProfile:
    """What the tracker needs to know of an entry in force."""

    names: list[str]  # title and synonyms
    keywords: list[str]  # tags, summary, fact names
    text: str  # everything else a card shows (body, facts, script)
    is_product: bool = False


@dataclass
class TurnMemory:
    speaker: str
    content: str
    scores: dict[str, float]
    seq: int
    confidence: float = 1.0


@dataclass
class CardRef:
    entry_id: str
    reason: str
    pinned: bool = False


@dataclass
class TopicState:
    """What one conversation remembers; `to_json` / `from_json` round-trip it through the database."""

    seq: int = 0
    turns: list[TurnMemory] = field(default_factory=list)
    cards: list[CardRef] = field(default_factory=list)
    dismissed: list[str] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)  # {entry_id, title, seq}, newest first
    last_topic: str = ""

    @property
    def card_ids(self) -> list[str]:
        return [c.entry_id for c in self.cards]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TopicState:
        data = dict(data or {})
        return cls(
            seq=int(data.get("seq", 0)),
            turns=[TurnMemory(**t) for t in data.get("turns", [])],
            cards=[CardRef(**c) for c in data.get("cards", [])],
            dismissed=list(data.get("dismissed", [])),
            products=list(data.get("products", [])),
            last_topic=str(data.get("last_topic", "")),
        )


@dataclass
class TurnOutcome:
    changed: bool
    cards: list[CardRef]
    content: str  # what was left after small talk was cut out ("" = small talk)
    confidence: float
    shift: bool = False
    took_ms: float = 0.0


def content_of(text: str) -> str:
    """The clauses of an utterance that say something (small talk, thanks and identity answers cut;
    a turn that only asks the agent to wait says nothing)."""
    text = normalize(text)
    if _WAITING.search(text) and not _ASKS.search(text):
        return ""
    kept = []
    for clause in _CLAUSES.split(text):
        if len(_HAN_OR_WORD.findall(_FILLER.sub("", clause))) >= 2:
            kept.append(clause)
    return " ".join(kept)


def settles(text: str) -> bool:
    """Does the customer settle on something ("那我先分期吧", "那就用积分抵吧") without asking anything?"""
    text = normalize(text)
    return bool(_SETTLES.search(text)) and not _ASKS.search(text) and not _TOPIC_TURN.search(text)


def opens_new_matter(text: str) -> bool:
    """Does the utterance open a new matter ("对了", "另外", "还有就是", "顺便问一下")?"""
    return bool(_TOPIC_TURN.search(normalize(text)))


class TopicTracker:
    """Decides the card set turn by turn; stateless itself (the state is passed in), thread-safe."""

    def __init__(self, *, searcher: Searcher, config: TopicConfig | None = None) -> None:
        self.searcher = searcher
        self.config = config or TopicConfig()
        self._products: list[tuple[str, str]] = []
        self._product_names: dict[str, str] = {}  # entry id -> its names, for references back ("那张卡")
        self._vocabulary: frozenset[str] = frozenset()
        self._lexicon: frozenset[str] = frozenset()  # the same of everything a card shows (body, facts, script)
        # an entry's raw text -> (normalised, its words), kept across refreshes: a publish cuts only what changed
        # (an unchanged text keeps the cut of its time, before words the experts added later — close enough
        # for telling topical words from everyday ones, and it bounds a refresh's cost)
        self._cut: dict[str, tuple[str, frozenset[str]]] = {}
        self._texts: dict[str, str] = {}
        self._headings: dict[str, str] = {}

    def set_knowledge(self, profiles: Mapping[str, EntryProfile]) -> None:
        """Learn from the entries in force: product names (for remembering mentions), the knowledge
        base's vocabulary (what counts as a topic word) and each entry's text (what a card covers)."""
        names: dict[str, str] = {}
        frequency: dict[str, int] = {}
        everywhere: dict[str, int] = {}
        cut: dict[str, tuple[str, frozenset[str]]] = {}
        texts: dict[str, str] = {}
        headings: dict[str, str] = {}
        for entry_id, profile in profiles.items():
            if profile.is_product:
                names.update({normalize(n): entry_id for n in profile.names if len(n.strip()) >= 2})
            heading = normalize(" ".join(profile.names + profile.keywords))
            for term in self._terms(heading):
                frequency[term] = frequency.get(term, 0) + 1
            raw = f"{heading} {profile.text}"
            if raw not in cut:
                cut[raw] = self._cut.get(raw) or self._cut_text(raw)
            texts[entry_id], words = cut[raw]
            for term in words:
                everywhere[term] = everywhere.get(term, 0) + 1
            headings[entry_id] = heading
        common = max(3, int(self.config.common_share * len(profiles)))
        self._products = sorted(names.items(), key=lambda kv: -len(kv[0]))
        self._product_names = {}
        for name, entry_id in names.items():
            self._product_names[entry_id] = f"{self._product_names.get(entry_id, '')} {name}"
        self._vocabulary = frozenset(t for t, n in frequency.items() if n <= common)
        self._lexicon = frozenset(t for t, n in everywhere.items() if n <= common)
        self._texts = texts
        self._cut = cut
        self._headings = headings

    def _cut_text(self, raw: str) -> tuple[str, frozenset[str]]:
        text = normalize(raw)
        return text, frozenset(self._terms(text))

    def _terms(self, text: str) -> set[str]:
        return {t for t in self.searcher.analyzer.tokens(text) if not t.startswith("#") and len(t) >= 2}

    def _profile_of(self, entry_id: str) -> str:
        return self._headings.get(entry_id, "")

    def _text_of(self, entry_id: str) -> str:
        return self._texts.get(entry_id, "")

    def observe(self, state: TopicState, *, speaker: str, text: str, final: bool = True) -> TurnOutcome:
        """Update `state` with one utterance and say whether the card set changed."""
        started = time.perf_counter()
        cfg = self.config
        content = content_of(text)
        if not content:
            return TurnOutcome(False, list(state.cards), "", 0.0, took_ms=_ms(started))
        named = self._named_products(content)
        if final:
            state.seq += 1
            self._remember_products(state, named)
        if speaker != CUSTOMER:
            if final:  # the agent's words are context for later turns, never a reason to move cards
                response = self._search(content)
                self._push_turn(state, TurnMemory(AGENT, content, _scores(response, cfg.candidates), state.seq,
                                                  response.confidence))
            return TurnOutcome(False, list(state.cards), content, 0.0, took_ms=_ms(started))

        if settles(text):
            return TurnOutcome(False, list(state.cards), content, 0.0, took_ms=_ms(started))
        terms = self.domain_terms(content)
        back_to = self._referent(state, content) if not named else None
        # No topic word, product or reference back (mood, names, "那怎么办", "存一万二能抵多少税"): only a
        # confident question of its own about something not shown may move the cards.
        vague = not terms and not named and back_to is None and not (
            _ASKS.search(content) and self.domain_terms(content, self._lexicon))
        if vague and not final:
            return TurnOutcome(False, list(state.cards), content, 0.0, took_ms=_ms(started))

        context = Blend(tuple(p for p in (content, back_to["name"] if back_to else "", state.last_topic) if p))
        # A partial is read on its own: it is cheap and only moves cards when it is very sure anyway.
        queries: list[str | Blend] = [content] if vague or len(context.parts) == 1 or not final else [content, context]
        responses = self.searcher.search_many(queries, top_k=cfg.candidates, related=0, passages=False)
        own = responses[0]
        if vague and not (own.confidence >= cfg.vague_confident and _own_lead(own, state.card_ids)):
            return TurnOutcome(False, list(state.cards), content, own.confidence, took_ms=_ms(started))
        views = [(r, _scores(r, cfg.candidates)) for r in responses]
        if own.confidence >= cfg.confident and back_to is None:
            views = views[:1]  # a question that stands on its own is not read through the old topic
        prior = self._prior(state)
        confidence = max(r.confidence for r, _ in views)
        shift = bool(state.turns) and not (set(_top(_scores(own, 5), 5)) & set(_top(prior, 5)))
        # "对了 / 另外 / 还有就是…" opens a new matter: the cards move to it even if they look related.
        turning = final and opens_new_matter(text)
        if shift and final:
            state.turns, prior = [], {}
        # Two readings of the same evidence: whether the topic moved is judged with the context and
        # the window (steady), which cards to show then with the turn itself weighing most (precise).
        ranking = self._rank(state, views, prior, back_to, cfg.context_weight, cfg.prior_weight)
        picks = self._rank(state, views, prior, back_to, cfg.pick_context_weight, cfg.pick_prior_weight)

        changed = False
        if ranking and (final or confidence >= cfg.partial_confident) and (
                turning or self._new_need(state, ranking, own, terms, named)):
            before = state.card_ids
            state.cards = self._choose(state, picks, views, content)
            changed = state.card_ids != before
        if final:
            self._push_turn(state, TurnMemory(CUSTOMER, content, _scores(own, cfg.candidates), state.seq, own.confidence))
            state.last_topic = content
        return TurnOutcome(changed, list(state.cards), content, confidence, shift=shift, took_ms=_ms(started))

    def _rank(self, state: TopicState, views, prior: dict[str, float], back_to, context_weight: float,  # type: ignore[no-untyped-def]
              prior_weight: float) -> list[str]:
        scores: dict[str, float] = {}
        for view, (response, by_entry) in enumerate(views):
            weight = response.confidence * (1.0 if view == 0 else context_weight)
            for entry_id, score in by_entry.items():
                scores[entry_id] = scores.get(entry_id, 0.0) + weight * score
        for entry_id, score in prior.items():
            if entry_id in scores:
                scores[entry_id] += prior_weight * score
        if scores and self.config.related_boost:  # the experts' links of the leader, among the candidates
            leader = max(scores, key=lambda e: scores[e])
            lift = self.config.related_boost * scores[leader]
            for other in self.searcher.associations.related_to(leader):
                if other in scores:
                    scores[other] += lift
        if back_to is not None:  # "那个理财": the product mentioned earlier leads
            scores[back_to["entry_id"]] = max(scores.values(), default=0.0) + 1.0
        return [e for e in sorted(scores, key=lambda e: -scores[e]) if e not in state.dismissed]

    def domain_terms(self, content: str, vocabulary: frozenset[str] | None = None) -> list[str]:
        """Words of the turn that the knowledge base uses, that not every entry uses and that are not
        everyday words (jieba's general-Chinese IDF; words it does not know count as specific)."""
        found: list[str] = []
        idf = _general_idf()
        vocabulary = self._vocabulary if vocabulary is None else vocabulary
        for term in self.searcher.analyzer.tokens(content):
            if (not term.startswith("#") and term in vocabulary and term not in found
                    and idf.get(term, math.inf) >= self.config.general_idf):
                found.append(term)
        return found

    def _new_need(self, state: TopicState, ranking: list[str], own: SearchResponse, terms: list[str],
                  named: list[tuple[str, str]]) -> bool:
        """Hysteresis: the cards move only for something they do not already answer."""
        shown = state.card_ids
        if not shown:
            return True
        lead = _own_lead(own, shown)
        if lead is not None and own.confidence >= self.config.confident:
            return True  # a question that clearly stands on its own
        covered = " ".join(self._profile_of(e) for e in shown)
        new_words = [term for term in terms if term not in covered]
        if lead is not None and own.confidence >= self.config.lead_confident:
            if any(term in self._profile_of(lead) for term in new_words):
                return True  # the turn's own best entry is about a word the cards shown do not cover
        if ranking[0] in shown:
            return False
        if any(entry_id not in shown for _, entry_id in named):
            return True
        return bool(new_words)

    # ------------------------------------------------------------- agent actions

    @staticmethod
    def pin(state: TopicState, entry_id: str, reason: str = "坐席已固定") -> bool:
        """Keep a card whatever the topic does (it may be one not currently shown)."""
        for card in state.cards:
            if card.entry_id == entry_id:
                changed = not card.pinned
                card.pinned = True
                return changed
        state.cards.insert(0, CardRef(entry_id, reason, pinned=True))
        if entry_id in state.dismissed:
            state.dismissed.remove(entry_id)
        return True

    @staticmethod
    def unpin(state: TopicState, entry_id: str) -> bool:
        for card in state.cards:
            if card.entry_id == entry_id and card.pinned:
                card.pinned = False
                return True
        return False

    @staticmethod
    def dismiss(state: TopicState, entry_id: str) -> bool:
        """Remove a card and never push it again in this conversation."""
        before = len(state.cards)
        state.cards = [c for c in state.cards if c.entry_id != entry_id]
        if entry_id not in state.dismissed:
            state.dismissed.append(entry_id)
        return len(state.cards) != before

    # ------------------------------------------------------------- internals

    def _search(self, query: str) -> SearchResponse:
        return self.searcher.search_many([query], top_k=self.config.candidates, related=0, passages=False)[0]

    def _named_products(self, content: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        text = content
        for name, entry_id in self._products:
            if name in text and all(entry_id != e for _, e in found):
                found.append((name, entry_id))
                text = text.replace(name, " ")
        return found

    def _referent(self, state: TopicState, content: str) -> dict[str, Any] | None:
        """The product a reference back ("那个理财", "我爸那张卡", "它") points at: the latest one mentioned
        one of whose names carries the reference's noun (理财, 卡 …), else the latest one."""
        found = _ANAPHORA.search(content) if state.products else None
        if found is None:
            return None
        noun = found.group("noun")
        if noun:
            for product in state.products:
                # (a product's name as remembered is already normalised: it is one of `_products`)
                if noun in self._product_names.get(product["entry_id"], product["name"]):
                    return product
        return state.products[0]

    def _remember_products(self, state: TopicState, named: list[tuple[str, str]]) -> None:
        for name, entry_id in reversed(named):
            state.products = [p for p in state.products if p["entry_id"] != entry_id]
            state.products.insert(0, {"entry_id": entry_id, "name": name, "seq": state.seq})
        del state.products[self.config.products_remembered:]

    def _prior(self, state: TopicState) -> dict[str, float]:
        cfg = self.config
        prior: dict[str, float] = {}
        for age, turn in enumerate(reversed(state.turns)):
            weight = cfg.decay ** age * turn.confidence * (1.0 if turn.speaker == CUSTOMER else cfg.agent_weight)
            for entry_id, score in turn.scores.items():
                prior[entry_id] = prior.get(entry_id, 0.0) + weight * score
        return prior

    def _push_turn(self, state: TopicState, turn: TurnMemory) -> None:
        state.turns.append(turn)
        del state.turns[: max(0, len(state.turns) - self.config.window)]

    def _choose(self, state: TopicState, ranking: list[str], views, content: str) -> list[CardRef]:  # type: ignore[no-untyped-def]
        pinned = [c for c in state.cards if c.pinned]
        free = max(1, self.config.max_cards - len(pinned))
        hits = {}
        for response, _ in reversed(views):
            hits.update({h.entry_id: h for h in response.hits})
        chosen = [e for e in ranking if e not in {c.entry_id for c in pinned}][:free]
        return pinned + [CardRef(e, self._reason(hits.get(e), e, content, state)) for e in chosen]

    def _reason(self, hit, entry_id: str, content: str, state: TopicState) -> str:  # type: ignore[no-untyped-def]
        """Why a card is shown: the words of the conversation it matches ("因为提到：房贷 提前还款")."""
        haystack = self._text_of(entry_id) or (normalize(f"{hit.title} {hit.text}") if hit is not None else "")
        words: list[str] = []
        for product in state.products:
            if product["entry_id"] == entry_id:
                words.append(product["name"])
        for term in self.searcher.analyzer.tokens(normalize(f"{content} {state.last_topic}")):
            if term.startswith("#") or len(term) < 2 or term not in haystack or any(term in w for w in words):
                continue
            words = [w for w in words if w not in term] + [term]
        return f"因为提到：{' '.join(words[:3])}" if words else "与当前话题语义相关"


@functools.cache
def _general_idf() -> dict[str, float]:
    """jieba's IDF table of general Chinese (ships with jieba, offline)."""
    import jieba.analyse

    return jieba.analyse.default_tfidf.idf_loader.get_idf()[0]


def _own_lead(own: SearchResponse, shown: list[str]) -> str | None:
    """The turn's own best entry, if it is not among the cards shown."""
    return own.hits[0].entry_id if own.hits and own.hits[0].entry_id not in shown else None


def _scores(response: SearchResponse, limit: int) -> dict[str, float]:
    return {h.entry_id: round(float(h.score), 5) for h in response.hits[:limit]}


def _top(scores: Mapping[str, float], k: int) -> list[str]:
    return sorted(scores, key=lambda e: -scores[e])[:k]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
