"""The search path end to end on a real (in-memory) Qdrant with the deterministic fake embedder."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kb import service
from kb.db import session_scope
from kb.errors import ValidationFailed
from retrieval.index.base import IndexFilter
from retrieval.search import Filters
from tests.factories import entry_data, version_data

T0 = datetime(2026, 1, 1, tzinfo=UTC)

ENTRIES = [
    entry_data(id="MORT-RATE", title="房贷利率", category="product", product_type="mortgage", risk_level=None,
               body="首套房贷款利率按LPR加减点确定。自2026年1月1日起，首套房利率为LPR减30个基点。",
               synonyms=["按揭利率", "房贷利息"], related=["LPR", "MORT-CALC", "MORT-DOCS"], facts={}, valid_from=T0),
    entry_data(id="LPR", title="最新LPR报价", category="product", product_type="mortgage", risk_level=None,
               body="贷款市场报价利率由全国银行间同业拆借中心每月20日发布。5年期以上LPR为3.50%。",
               synonyms=["贷款市场报价利率"], related=[], facts={}, valid_from=T0),
    entry_data(id="MORT-CALC", title="首套房利率计算示例", category="faq", product_type="mortgage", risk_level=None,
               body="示例：贷款100万元，期限30年，执行利率3.20%，等额本息月供约4325元。", related=[], facts={}, valid_from=T0),
    entry_data(id="MORT-DOCS", title="房贷办理材料清单", category="process", product_type="mortgage", risk_level=None,
               body="身份证、户口本、婚姻证明、收入证明、购房合同、首付款凭证。", related=[], facts={}, valid_from=T0),
    entry_data(id="ECNY", title="数字人民币钱包开通", category="process", product_type="e_cny", risk_level=None,
               body="在手机银行或数字人民币App中选择云岭银行，完成实名认证即可开通钱包。", synonyms=["e-CNY", "数币钱包"],
               related=[], facts={}, valid_from=T0),
    entry_data(id="CD", title="大额存单", category="product", product_type="large_cd", risk_level=None,
               body="个人大额存单20万元起存，可提前支取，支取部分按活期利率计息。", related=[], facts={}, valid_from=T0),
]


@pytest.fixture
def loaded(runtime):
    with session_scope(runtime.engine) as session:
        for data in ENTRIES:
            service.create_entry(session=session, data=data, actor="expert", now=T0)
    runtime.sync_index()
    return runtime


def ids(response):
    return [h.entry_id for h in response.hits]


def test_keyword_search_finds_the_entry_and_its_related_links(loaded):
    response = loaded.searcher.search("房贷利率", top_k=1)
    assert ids(response) == ["MORT-RATE"]
    related = [r.title for r in response.hits[0].related]
    assert related == ["最新LPR报价", "首套房利率计算示例", "房贷办理材料清单"]
    assert response.hits[0].version == 1 and response.hits[0].valid_from == T0


def test_traditional_characters_and_full_width_find_simplified_entries(loaded):
    assert ids(loaded.searcher.search("數字人民幣錢包怎麼開通？", top_k=1)) == ["ECNY"]
    assert ids(loaded.searcher.search("ＬＰＲ報價", top_k=1)) == ["LPR"]


def test_expert_synonyms_are_searchable(loaded):
    assert ids(loaded.searcher.search("e-CNY", top_k=1)) == ["ECNY"]


def test_filters_by_category_and_product_type(loaded):
    response = loaded.searcher.search("房贷", top_k=10, filters=Filters(categories=("process",)))
    assert ids(response)[0] == "MORT-DOCS"
    assert {h.category for h in response.hits} == {"process"}
    response = loaded.searcher.search("利率", top_k=10, filters=Filters(product_types=("large_cd",)))
    assert set(ids(response)) <= {"CD"}


def test_new_version_replaces_the_old_one_and_as_of_sees_history(loaded):
    later = T0 + timedelta(days=10)
    with session_scope(loaded.engine) as session:
        service.add_version(session=session, entry_id="CD", base_version=1, actor="expert", now=later,
                            data=version_data(ENTRIES[5], body="个人大额存单30万元起存。", valid_from=later))
    loaded.sync_index()
    now_hits = [h for h in loaded.searcher.search("大额存单起存金额", top_k=10).hits if h.entry_id == "CD"]
    assert [h.version for h in now_hits] == [2]
    before = [h for h in loaded.searcher.search("大额存单起存金额", top_k=10, as_of=T0 + timedelta(days=1)).hits
              if h.entry_id == "CD"]
    assert [h.version for h in before] == [1]


def test_retired_entry_disappears_from_search(loaded):
    with session_scope(loaded.engine) as session:
        service.retire_entry(session=session, entry_id="ECNY", base_version=1, actor="expert")
    loaded.sync_index()
    assert "ECNY" not in ids(loaded.searcher.search("数字人民币钱包", top_k=10))


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_validation_error(loaded, query):
    with pytest.raises(ValidationFailed):
        loaded.searcher.search(query)


@pytest.mark.parametrize("query", ["？？？！！！", "😀🎉", "。，、"])
def test_punctuation_or_emoji_only_gives_an_empty_result(loaded, query):
    response = loaded.searcher.search(query)
    assert response.hits == [] and response.handoff is True and response.confidence == 0.0


def test_a_ten_thousand_character_query_is_answered(loaded):
    story = "我之前在别的银行办过很多业务，" * 700 + "请问数字人民币钱包怎么开通？"
    assert len(story) > 10_000
    response = loaded.searcher.search(story, top_k=3)
    assert "ECNY" in ids(response)


def test_confidence_is_a_probability(loaded):
    response = loaded.searcher.search("房贷利率", top_k=3)
    assert 0.0 <= response.confidence <= 1.0
    assert response.handoff == (response.confidence < 0.5)


def test_sync_is_idempotent_and_check_reports_no_drift(loaded):
    from sqlmodel import Session

    points = loaded.index.count()
    report = loaded.sync_index()
    assert report.versions_indexed == 0 and loaded.index.count() == points
    with Session(loaded.engine) as session:
        assert loaded.indexer.check(session=session).ok


def test_check_finds_a_version_missing_from_the_index(loaded):
    from sqlmodel import Session

    with Session(loaded.engine) as session:
        version = service.get_version(session=session, entry_id="LPR", number=1)
        loaded.index.delete_version(version_id=version.id)
        drift = loaded.indexer.check(session=session)
    assert drift.missing == [version.id] and not drift.ok
    loaded.sync_index()
    with Session(loaded.engine) as session:
        assert loaded.indexer.check(session=session).ok


def test_a_blend_reads_its_parts_together_and_encodes_each_part_once(loaded):
    """Live cards read a turn with the conversation's last topic: the words of both, the length-weighted
    mean of their vectors — and a part encoded before (the previous turn) costs no new encoding."""
    import numpy as np

    from retrieval.embedding import BatchingEmbedder, HashingEmbedder
    from retrieval.search import Blend, Searcher

    class Counting(HashingEmbedder):
        encoded: list[str] = []

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            self.encoded.extend(texts)
            return super().encode_queries(texts)

    inner = Counting()
    base = loaded.searcher
    searcher = Searcher(index=base.index, embedder=BatchingEmbedder(inner), analyzer=base.analyzer)
    turn, topic = "利率多少", "我想办房贷"
    searcher.search(topic)  # the previous turn
    alone, blended = searcher.search_many([turn, Blend((turn, topic))], top_k=3, related=0)
    assert inner.encoded == [topic, turn]  # the blend reused both vectors
    assert ids(blended)[0] == "MORT-RATE" and "房贷" in blended.query
    assert searcher.search_many([Blend((turn,))], related=0)[0].hits[0].entry_id == ids(alone)[0]

    plain = HashingEmbedder()
    a, b = plain.encode_queries([turn, topic])
    mixed = (len(turn) * a + len(topic) * b) / np.linalg.norm(len(turn) * a + len(topic) * b)
    hits = base.index.search_dense(mixed.tolist(), limit=60)
    assert hits  # the same vector the blend searched with finds the same best entry
    assert hits[0].payload["entry_id"] in ids(blended)


def test_an_empty_blend_is_refused(loaded):
    from retrieval.search import Blend

    with pytest.raises(ValidationFailed):
        loaded.searcher.search_many([Blend((" ", ""))])


def test_a_synonym_named_in_the_query_counts_as_a_strong_word_match(loaded):
    """副卡 is an expert synonym of the supplementary card: said by the customer, it lifts that entry even
    when the rest of the customer's words match another card better (scores fused per entry)."""
    from retrieval.index.base import Hit
    from retrieval.search import Searcher

    def hit(point: str, entry_id: str, score: float) -> Hit:
        return Hit(point, score, {"entry_id": entry_id, "version": 1, "version_id": f"v-{entry_id}", "title": entry_id,
                                  "category": "product", "product_type": None, "valid_from": 0, "text": entry_id})

    dense = [hit("b", "SUPPLEMENTARY", 0.90), hit("a", "SENIOR-CARD", 0.86), hit("c", "OTHER", 0.80)]
    sparse = [hit("a", "SENIOR-CARD", 9.0), hit("b", "SUPPLEMENTARY", 2.0)]
    base = loaded.searcher
    plain = Searcher(index=base.index, embedder=base.embedder, analyzer=base.analyzer, synonym_weight=0.0)
    assert [h.entry_id for h in plain._collapse(dense, sparse, ["SUPPLEMENTARY"])][0] == "SENIOR-CARD"
    lifted = base._collapse(dense, sparse, ["SUPPLEMENTARY"])
    assert lifted[0].entry_id == "SUPPLEMENTARY" and lifted[0].sparse_rank == 2
    assert [h.entry_id for h in base._collapse(dense, sparse, ["NOT-RETRIEVED"])][0] == "SENIOR-CARD"


@pytest.mark.parametrize("text, terms", [
    ("我点外卖能不能用e-CNY付", {"e-cny", "cny"}),
    ("T+1到账吗", {"t+1"}),
    ("7×24小时能转账吗", {"7", "24", "小时"}),
])
def test_words_with_a_sign_in_them_are_search_terms(text, terms):
    """A dictionary word like e-CNY or T+1 was dropped whole from queries and passages (it is not all
    letters): it now counts as itself and as its parts."""
    from retrieval.text import Analyzer, normalize

    analyzer = Analyzer(extra_words=["e-CNY", "T+1"])
    assert terms <= set(analyzer.tokens(normalize(text)))


def test_teaching_the_same_words_again_does_not_change_how_text_is_cut():
    """Every refresh teaches the tokenizer the knowledge base's words again; jieba adds each call's
    frequency to its total, which used to shift the cut of all text a little with every publish."""
    from retrieval.text import Analyzer

    analyzer = Analyzer()
    words = ["薪享通", "惠商贷", "数币卡", "e-CNY"]
    analyzer.add_words(words)
    total = analyzer._jieba.total
    for _ in range(50):
        analyzer.add_words(words)
    assert analyzer._jieba.total == total
    assert "惠商贷" in analyzer.tokens("惠商贷的额度多少")


def test_each_version_has_its_names_indexed_beside_its_chunks(loaded):
    from sqlmodel import Session

    from ingestion.chunking import entry_names

    with Session(loaded.engine) as session:
        version = service.get_version(session=session, entry_id="ECNY", number=1)
        expected = entry_names({"title": version.title, "synonyms": version.synonyms, "summary": version.summary})
    assert loaded.names.version_ids()[version.id] == len(expected) == 4  # title, 2 synonyms, summary
    hits = loaded.names.search_dense(loaded.embedder.encode_queries(["数币钱包"])[0], limit=1)
    assert hits[0].payload["entry_id"] == "ECNY" and hits[0].payload["text"] == "数币钱包"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)  # a name is embedded as a query: same text, same vector


def test_a_question_phrased_like_a_name_finds_its_entry_by_the_name(loaded):
    """With the names alone deciding, the entry whose synonym the question repeats comes first; with
    no names indexed (a store from before names existed) the ranking is the chunk ranking."""
    from retrieval.search import Searcher

    base = loaded.searcher
    only_names = Searcher(index=base.index, names=base.names, embedder=base.embedder, analyzer=base.analyzer,
                          name_weight=1.0)
    assert ids(only_names.search("贷款市场报价利率", top_k=1)) == ["LPR"]
    chunks_only = Searcher(index=base.index, embedder=base.embedder, analyzer=base.analyzer)
    empty = base.names.sibling("empty")
    empty.ensure_collection(dim=base.embedder.dim)
    unnamed = Searcher(index=base.index, names=empty, embedder=base.embedder, analyzer=base.analyzer)
    for query in ("房贷利率", "数字人民币怎么开", "大额存单提前支取"):
        assert ids(unnamed.search(query, top_k=5)) == ids(chunks_only.search(query, top_k=5))


def test_names_follow_new_versions_retirement_and_a_lost_names_index(loaded):
    from sqlmodel import Session

    later = T0 + timedelta(days=1)
    with session_scope(loaded.engine) as session:
        service.add_version(session=session, entry_id="CD", base_version=1, actor="expert", now=later,
                            data=version_data(ENTRIES[5], synonyms=["大额存款凭证"], valid_from=later))
    loaded.sync_index()
    with Session(loaded.engine) as session:
        old, new = (service.get_version(session=session, entry_id="CD", number=n) for n in (1, 2))
    hits = loaded.names.search_dense(loaded.embedder.encode_queries(["大额存款凭证"])[0], limit=1)
    assert hits[0].payload["version_id"] == new.id
    from kb.timeutil import epoch
    from retrieval.index.base import OPEN_END, IndexFilter
    now = IndexFilter(valid_at=epoch(T0 + timedelta(days=2), OPEN_END))
    assert all(h.payload["version_id"] != old.id for h in loaded.names.search_dense(
        loaded.embedder.encode_queries(["大额存单"])[0], limit=20, flt=now))
    # a names index lost or never built: check reports it, sync rebuilds the names and not the chunks
    chunks = loaded.index.count()
    loaded.names.delete_version(version_id=new.id)
    with Session(loaded.engine) as session:
        assert new.id in loaded.indexer.check(session=session).missing
    report = loaded.sync_index()
    assert report.versions_indexed == 0 and report.versions_named == 1 and loaded.index.count() == chunks
    with Session(loaded.engine) as session:
        assert loaded.indexer.check(session=session).ok


def test_a_store_without_names_gets_them_and_still_closes_old_versions(loaded):
    """Upgrading a store indexed before names existed: the sync that names the old versions must still
    close the window of a version superseded meanwhile, in the chunk index too."""
    from sqlmodel import Session

    with Session(loaded.engine) as session:
        old = service.get_version(session=session, entry_id="CD", number=1)
        version_ids = [v.id for v in (service.get_version(session=session, entry_id=e, number=1) for e in
                                      ("MORT-RATE", "LPR", "MORT-CALC", "MORT-DOCS", "ECNY", "CD"))]
    for version_id in version_ids:  # a names index that never had these versions
        loaded.names.delete_version(version_id=version_id)
    later = T0 + timedelta(days=1)
    with session_scope(loaded.engine) as session:
        service.add_version(session=session, entry_id="CD", base_version=1, actor="expert", now=later,
                            data=version_data(ENTRIES[5], body="个人大额存单30万元起存。", valid_from=later))
    report = loaded.sync_index()
    assert (report.versions_indexed, report.versions_named) == (1, 6)  # the new version whole, the rest named
    with Session(loaded.engine) as session:
        assert loaded.indexer.check(session=session).ok
    hits = [h for h in loaded.searcher.search("大额存单起存", top_k=10).hits if h.entry_id == "CD"]
    assert [h.version for h in hits] == [2]
    now = IndexFilter(valid_at=int((T0 + timedelta(days=2)).timestamp()))
    vector = loaded.embedder.encode_queries(["大额存单"])[0]
    for index in (loaded.index, loaded.names):
        assert all(h.payload["version_id"] != old.id for h in index.search_dense(vector, limit=50, flt=now))
