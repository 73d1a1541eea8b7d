"""IE test fixtures: one loaded chat model shared by the session, small grammar bounds."""

from __future__ import annotations

import pytest

from lamina.ie.grammar import GrammarLimits

#: Bounds that keep a random model's answers short (fast tests, no max_tokens cut-offs).
SMALL = GrammarLimits(max_items=2, max_chars=3)

SCHEMAS = {
    "NER": ["人物", "地理位置", "组织机构"],
    "RE": ["作者", "国籍"],
    "EET": ["人生-订婚", "组织关系-裁员"],
    "EE": [{"event_type": "人生-订婚", "trigger": True, "arguments": ["订婚主体", "时间"]},
           {"event_type": "灾害/意外-坍/垮塌", "trigger": True, "arguments": ["受伤人数"]}],
    "EEA": [{"event_type": "组织关系-辞/离职", "arguments": ["离职者", "时间", "原所属组织"]}],
    "KG": [{"entity_type": "人物", "attributes": ["出生日期", "国籍", "别名"]}],
}


@pytest.fixture(scope="session")
def ie_model(chat_gguf):
    """The fixture chat model (alpaca2 template recorded in the file)."""
    import lamina

    model = lamina.load(chat_gguf, n_threads=1)
    yield model
    model.close()


@pytest.fixture(scope="session")
def wild_model(base_gguf):
    """The random base model: its flat next-token distribution makes seeded sampling
    wander through every branch of a grammar (the merged chat model almost always
    answers empty lists, which would leave most of the grammar untested)."""
    import lamina

    model = lamina.load(base_gguf, n_threads=1, template="alpaca2")
    yield model
    model.close()
