"""Knowledge cards: facts, script, disclosure by product type, citation, and the change marker."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kb import service
from retrieval.cards import CHANGED_MESSAGE, build_card, cards_for, risk_disclosure
from tests.factories import entry_data, version_data

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def test_card_of_a_wealth_product_carries_facts_script_disclosure_and_citation(session):
    data = entry_data(valid_from=T0, body="近一年年化收益率2.8%。")
    version = service.create_entry(session=session, data=data, actor="expert", now=T0)
    card = build_card(session=session, version=version, now=T0 + timedelta(days=1))
    assert card.title == data["title"] and card.category_label == "产品体系"
    assert [(f.key, f.text) for f in card.facts] == [("起购金额", "1万元"), ("期限", "90天")]
    assert card.risk_disclosure == "理财非存款、产品有风险、投资须谨慎。过往业绩不代表未来收益。"
    assert card.citation.text == f"{data['id']} 第1版，2026-04-01起生效"
    assert card.changed is False


def test_no_disclosure_where_the_product_type_needs_none(session):
    version = service.create_entry(session=session, data=entry_data(product_type="mortgage", risk_level=None), actor="e")
    assert risk_disclosure(version) is None


def test_changed_entry_shows_the_marker_within_the_notice_window(session):
    data = entry_data(valid_from=T0)
    service.create_entry(session=session, data=data, actor="e", now=T0)
    changed_at = T0 + timedelta(days=10)
    service.add_version(session=session, entry_id=data["id"], base_version=1, actor="e", now=changed_at,
                        data=version_data(data, facts={"起购金额": {"value": "1", "unit": "元"}}, valid_from=changed_at))
    [card] = cards_for(session=session, entry_ids=[data["id"]], at=changed_at + timedelta(days=2))
    assert card.version == 2 and card.changed
    assert card.change_summary == "起购金额：1万元 → 1元；期限：删除（原为 90天）"
    assert CHANGED_MESSAGE == "该产品信息已变更，请注意话术更新"
    [later] = cards_for(session=session, entry_ids=[data["id"]], at=changed_at + timedelta(days=8))
    assert later.changed is False


def test_cards_for_skips_retired_entries(session):
    data = entry_data(valid_from=T0)
    service.create_entry(session=session, data=data, actor="e", now=T0)
    service.retire_entry(session=session, entry_id=data["id"], base_version=1, actor="e", effective_at=T0 + timedelta(days=1))
    assert cards_for(session=session, entry_ids=[data["id"]], at=T0 + timedelta(days=2)) == []


def test_confidence_model_falls_back_when_fitted_on_other_features(tmp_path, monkeypatch):
    import json

    from retrieval import confidence

    stale = tmp_path / "confidence.json"
    stale.write_text(json.dumps({"coef": [1.0], "intercept": 0.0, "features": ["old_feature"]}), encoding="utf-8")
    monkeypatch.setattr(confidence, "FITTED", stale)
    assert confidence.ConfidenceModel.default().source == "hand-set"
    monkeypatch.setattr(confidence, "FITTED", tmp_path / "missing.json")
    assert confidence.ConfidenceModel.default().source == "hand-set"
    assert confidence.ConfidenceModel.default().predict([]) == 0.0
