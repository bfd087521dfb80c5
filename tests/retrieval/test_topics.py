"""Topic tracking over the demo knowledge base: small talk leaves cards alone, a new need moves them,
pins stay, dismissed cards never come back, a product mentioned in passing is remembered."""
from __future__ import annotations

import pytest

from ingestion.demo import load_demo
from kb.db import session_scope
from retrieval.topics import (AGENT, CUSTOMER, EntryProfile, TopicConfig, TopicState, TopicTracker, content_of,
                              opens_new_matter, settles)


@pytest.mark.parametrize("text", [
    "喂，你好", "好的，谢谢", "嗯嗯，明白了", "我叫王芳，手机尾号是3821", "身份证号是530102199001011234",
    "稍等一下，我找一下", "好的好的没问题", "謝謝你，再見", "OK，拜拜", "是的是的", "我姓李", "对对对",
    "稍等 我看下我的测评结果", "嗯…我打开APP看一下 稍等啊", "等一下，我找找卡號",
])
def test_small_talk_and_identity_answers_have_no_content(text):
    assert content_of(text) == ""


@pytest.mark.parametrize("text, kept", [
    ("你好，我想问一下房贷提前还款", "房贷提前还款"),
    ("謝謝，那信用卡年費怎麼免", "信用卡年费"),
    ("好的，那大额存单能提前取吗", "大额存单"),
    ("我的身份证过期了怎么办", "身份证过期"),
    ("稍等，那信用卡年费多少", "信用卡年费"),  # waiting, but also asking
    ("我看一下账单，怎么多扣了一笔", "多扣了一笔"),
])
def test_content_keeps_the_question(text, kept):
    assert kept in content_of(text)


@pytest.fixture(scope="module")
def demo_runtime(tmp_path_factory):
    """The demo knowledge base indexed with the hashing embedder (fast, deterministic)."""
    from qdrant_client import QdrantClient

    from api.runtime import Runtime
    from kb.db import make_engine, upgrade
    from kb.settings import Settings
    from retrieval.embedding import HashingEmbedder
    from retrieval.index.client import QdrantClientIndex

    data = tmp_path_factory.mktemp("topics")
    settings = Settings(data_dir=data, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings, embedder=HashingEmbedder(), index=QdrantClientIndex(QdrantClient(":memory:")))
    with session_scope(runtime.engine) as session:
        load_demo(session=session)
    runtime.drain_outbox()
    yield runtime
    runtime.close()


@pytest.fixture
def tracker(demo_runtime) -> TopicTracker:
    return demo_runtime.topic_tracker


def say(tracker: TopicTracker, state: TopicState, text: str, speaker: str = CUSTOMER):
    return tracker.observe(state, speaker=speaker, text=text)


def test_a_question_brings_cards_with_reasons(tracker):
    state = TopicState()
    outcome = say(tracker, state, "我想问一下房贷提前还款怎么办理")
    assert outcome.changed
    assert "KB-S009" in state.card_ids
    assert len(state.cards) <= 3
    reason = next(c.reason for c in state.cards if c.entry_id == "KB-S009")
    assert reason.startswith("因为提到：") and "提前还款" in reason


def test_small_talk_thanks_and_identity_leave_cards_unchanged(tracker):
    state = TopicState()
    say(tracker, state, "信用卡逾期了会有什么后果")
    before = list(state.card_ids)
    for text in ("好的，谢谢你", "我叫张伟，手机尾号6688", "嗯嗯", "稍等我找一下"):
        outcome = say(tracker, state, text)
        assert not outcome.changed, text
        assert state.card_ids == before


def test_agent_turns_never_move_cards(tracker):
    state = TopicState()
    say(tracker, state, "大额存单可以提前支取吗")
    before = list(state.card_ids)
    outcome = say(tracker, state, "可以的，另外我们也有数字人民币钱包、积存金等产品", speaker=AGENT)
    assert not outcome.changed and state.card_ids == before


def test_topic_shift_replaces_the_cards(tracker):
    state = TopicState()
    say(tracker, state, "房贷提前还款怎么办理")
    outcome = say(tracker, state, "另外我想换点美元，每年的购汇额度是多少")
    assert outcome.changed and outcome.shift
    assert "KB-S032" in state.card_ids
    assert "KB-S009" not in state.card_ids


def test_pinned_cards_stay_and_dismissed_cards_never_return(tracker):
    state = TopicState()
    say(tracker, state, "房贷提前还款怎么办理")
    TopicTracker.pin(state, "KB-S009")
    dismissed = next(e for e in state.card_ids if e != "KB-S009")
    TopicTracker.dismiss(state, dismissed)
    say(tracker, state, "另外我想换点美元，每年的购汇额度是多少")
    assert state.card_ids[0] == "KB-S009" and state.cards[0].pinned
    say(tracker, state, "房贷提前还款怎么办理")
    assert dismissed not in state.card_ids


def test_a_product_mentioned_in_passing_is_remembered(tracker):
    state = TopicState()
    say(tracker, state, "我上个月在你们这买了稳享30天，今天主要想问下信用卡怎么提额")
    assert any(p["entry_id"] == "KB-P037" for p in state.products)
    outcome = say(tracker, state, "对了，那个理财到期了钱什么时候到账")
    assert "KB-P037" in state.card_ids, outcome


def test_max_cards_is_configurable(demo_runtime):
    tracker = TopicTracker(searcher=demo_runtime.searcher, config=TopicConfig(max_cards=1))
    tracker.set_knowledge(demo_runtime.profiles)
    state = TopicState()
    tracker.observe(state, speaker=CUSTOMER, text="房贷提前还款怎么办理")
    assert len(state.cards) == 1


def test_state_round_trips_through_json(tracker):
    state = TopicState()
    say(tracker, state, "我买了稳享30天，想问信用卡年费怎么免")
    TopicTracker.pin(state, "KB-S009")
    again = TopicState.from_json(state.to_json())
    assert again == state


def test_partials_only_move_cards_when_confident(tracker):
    state = TopicState()
    outcome = tracker.observe(state, speaker=CUSTOMER, text="我想问", final=False)
    assert not outcome.changed and state.seq == 0 and not state.turns


def test_topic_words_leave_out_everyday_chinese(tracker):
    """时候 / 多少 / 以后 appear in the knowledge base's headings but say nothing about the topic."""
    terms = tracker.domain_terms(content_of("那以后什么时候能取出来，要多少钱"))
    assert not {"时候", "多少", "以后"} & set(terms)
    assert {"信用卡", "年费"} <= set(tracker.domain_terms(content_of("信用卡年费多少")))
    assert "提前还款" in " ".join(tracker.domain_terms("房贷提前还款要预约吗"))


def test_a_follow_up_about_something_the_cards_do_not_cover_moves_them(tracker):
    """Same conversation, a new need: the turn's own best entry is about a word none of the shown
    cards' headings carry (here 挂失 after 年费), so the cards move even though the context still
    points at the old topic."""
    state = TopicState()
    say(tracker, state, "信用卡年费怎么收，能免吗")
    before = state.card_ids
    outcome = say(tracker, state, "那卡丢了要怎么挂失")
    assert outcome.changed and state.card_ids != before


@pytest.mark.parametrize("text, opens", [
    ("哦对了，刚才那张信用卡也要挂失吗", True), ("另外我想幫我媽辦一張副卡", True), ("还有就是账单日能改吗", True),
    ("顺便问一下，大额存单利率多少", True), ("好的。另外，定投怎么设", True), ("嗯 还有个事 我有笔定期", True),
    ("OK 那另外问一下 你们有没有医疗险", True), ("好的 那顺便问下积分", True),
    ("我想换个大点的房子", False), ("对的对的", False), ("还有吗", False), ("那利率呢", False),
])
def test_words_that_open_a_new_matter(text, opens):
    assert opens_new_matter(text) is opens


def test_a_turn_that_opens_a_new_matter_re_picks_the_cards(tracker):
    """The same follow-up keeps the cards (same topic) — unless the customer says it opens a new matter
    ("对了，…"): then the cards are chosen for that turn itself."""
    kept = TopicState()
    say(tracker, kept, "大额存单能提前取吗")
    before = kept.card_ids
    assert not say(tracker, kept, "大额存单利率多少").changed and kept.card_ids == before
    moved = TopicState()
    say(tracker, moved, "大额存单能提前取吗")
    outcome = say(tracker, moved, "对了，大额存单利率多少")
    assert outcome.changed and moved.card_ids != before


@pytest.mark.parametrize("threshold, moves", [(0.0, True), (1.01, False)])
def test_a_turn_without_topic_words_moves_the_cards_only_when_its_search_is_sure(demo_runtime, threshold, moves):
    """"能抵多少税" names no topic word; it still asks something new, so its own search decides — above
    `vague_confident` (0.9 by default) the cards move, below they stay."""
    tracker = TopicTracker(searcher=demo_runtime.searcher, config=TopicConfig(vague_confident=threshold))
    tracker.set_knowledge(demo_runtime.profiles)
    state = TopicState()
    say(tracker, state, "信用卡年费怎么收，能免吗")
    before = state.card_ids
    assert tracker.domain_terms("能抵多少税") == []
    outcome = say(tracker, state, "能抵多少税")
    assert outcome.changed is moves and (state.card_ids != before) is moves


@pytest.mark.parametrize("text, settled", [
    ("好的明白了 那我先分期吧 谢谢", True), ("行 那我先买二十万", True), ("那就用積分抵吧", True),
    ("好吧 那我先不买了", True), ("明白了，那我再想想", True),
    ("那我重新测一下行不行", False), ("那就好 周六开不开门啊", False), ("那我得自己去网点是吧", False),
    ("那我要挂失", False), ("对了 那我上个月买的那个现在能卖了吗", False), ("我想先分期", False),
    ("哦 对了 那我还有一笔定期", False), ("那我先存着 安全不安全啊", False), ("那就办这个 有没有年费", False),
    ("那我就等 到账没到账我怎么看", False), ("那我装修能用吧 老房子想翻新", False),
    ("那我先转过去 不会扣钱吧", False), ("那我可能记错了吧", True),
])
def test_a_customer_who_settles_on_something_asks_nothing(text, settled):
    """"那我先…吧 / 那就…" without a question — A-not-A (开不开, 有没有, 安全不安全) and tags (是吧) are questions —
    and without opening a new matter."""
    assert settles(text) is settled


def test_settling_on_something_keeps_the_cards(tracker):
    state = TopicState()
    say(tracker, state, "信用卡账单能分期吗，手续费多少")
    before = state.card_ids
    outcome = say(tracker, state, "好的明白了 那我先分期吧 谢谢")
    assert not outcome.changed and state.card_ids == before


def test_a_reference_back_points_at_the_product_whose_name_fits_its_noun(tracker):
    """"我爸那张卡" after 数币卡 and then 子钱包 were named means the 数币卡 (a name with 卡), not the
    product named last; a reference without a noun ("它") means the product named last."""
    state = TopicState()
    say(tracker, state, "我爸那张数币卡还在他身上")
    say(tracker, state, "子钱包怎么开通")
    assert [p["name"] for p in state.products][:2] == ["子钱包", "数币卡"]
    assert tracker._referent(state, "那张卡要是丢了能挂失吗")["entry_id"] == "KB-S041"
    assert tracker._referent(state, "那个钱包能免密吗")["entry_id"] == "KB-S042"
    assert tracker._referent(state, "它怎么收费")["entry_id"] == "KB-S042"
    assert tracker._referent(state, "年费怎么收") is None


def test_entries_the_experts_linked_to_the_leader_move_up(tracker):
    """提前还款 (KB-S009) leads; 提前还房贷需要预约吗 (KB-S010), which the experts linked to it, gains
    a share of its score and passes unlinked candidates; an unlinked entry gains nothing and a linked
    entry that is not a candidate is not added."""
    from dataclasses import replace

    from retrieval.search import SearchResponse

    def ranking(boost: float) -> list[str]:
        tr = TopicTracker(searcher=tracker.searcher, config=replace(tracker.config, related_boost=boost))
        response = SearchResponse("q", "q", [], 1.0, False, 0.0)
        scores = {"KB-S009": 1.0, "KB-P001": 0.9, "KB-P036": 0.85, "KB-S010": 0.8}
        return tr._rank(TopicState(), [(response, scores)], {}, None, 1.0, 0.0)

    assert ranking(0.0) == ["KB-S009", "KB-P001", "KB-P036", "KB-S010"]
    assert ranking(0.2) == ["KB-S009", "KB-S010", "KB-P001", "KB-P036"]
    assert "KB-S012" in tracker.searcher.associations.related_to("KB-S009")
    assert "KB-S012" not in ranking(0.2)


def test_a_refresh_cuts_only_the_entries_that_changed(demo_runtime):
    """The tracker learns its topic words from every entry's text; after a publish only changed texts
    are normalised and cut again (a refresh runs after each published batch)."""
    tracker = TopicTracker(searcher=demo_runtime.searcher)
    profiles = dict(demo_runtime._profiles)
    tracker.set_knowledge(profiles)
    before = dict(tracker._cut)
    changed = next(iter(profiles))
    old = profiles[changed]
    profiles[changed] = EntryProfile(names=old.names, keywords=old.keywords, text=old.text + " 新增：可在手机银行办理",
                                     is_product=old.is_product)
    calls = []
    cut = tracker._cut_text
    tracker._cut_text = lambda raw: calls.append(raw) or cut(raw)  # type: ignore[method-assign]
    tracker.set_knowledge(profiles)
    assert len(calls) == 1 and "新增：可在手机银行办理" in calls[0]
    assert len(tracker._cut) == len(before)  # the old text's cut is dropped, not kept for ever
