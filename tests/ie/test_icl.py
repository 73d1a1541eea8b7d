"""In-context learning: IEPile few-shot demonstrations (``--examples``) and seed 002's
ICL task set (``--format icl``), on the exact prompt strings, with the grammar on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.errors import LaminaError
from lamina.ie.api import Extractor, extract_many
from lamina.ie.fewshot import load_demos
from lamina.ie.icl import IclExample, build_prompt, icl_params, load_examples
from lamina.ie.instructions import build_instruction
from tests.ie.conftest import SMALL

DOC = "康有为、梁启超在北京创办了强学会。"


def demo(task: str, schema, text: str, output: dict) -> dict:
    """A train record as `lamina ie convert` (and DeepKE) writes it."""
    return {"task": task, "source": "demo", "instruction": build_instruction(task, schema, text),
            "output": json.dumps(output, ensure_ascii=False)}


DEMOS = [
    demo("NER", ["人物"], "鲁迅生于绍兴。", {"人物": ["鲁迅"]}),
    demo("NER", ["组织机构", "地理位置"], "华为公司在深圳。", {"组织机构": ["华为公司"], "地理位置": ["深圳"]}),
    demo("RE", ["作者", "地理位置"], "《呐喊》的作者是鲁迅。",
         {"作者": [{"subject": "呐喊", "object": "鲁迅"}], "地理位置": []}),
    demo("NER", ["地理位置"], "郭碧婷在台北。", {"地理位置": ["台北"]}),
    demo("NER", ["人物", "地理位置"], DOC, {"人物": ["康有为", "梁启超"], "地理位置": ["北京"]}),
]


def demo_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.json"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DEMOS),
                    encoding="utf-8")
    return path


def expected_prompt(model, shown: list[dict], user: str) -> str:
    """The chat the model should see: each demonstration's instruction and output as
    a user and an assistant turn, then the question (built from the file's lines)."""
    turns = []
    for d in shown:
        turns += [{"role": "user", "content": d["instruction"]},
                  {"role": "assistant", "content": d["output"]}]
    return model.template.render(turns + [{"role": "user", "content": user}],
                                 add_generation_prompt=True)


def test_demonstrations_by_schema_overlap_and_in_file_order(ie_model, tmp_path: Path):
    demos = load_demos(demo_file(tmp_path))
    assert [d.task for d in demos] == ["NER", "NER", "RE", "NER", "NER"]
    schema = ["地理位置", "组织机构"]
    user = build_instruction("NER", schema, DOC)
    overlap = Extractor(ie_model, task="NER", schema=schema, examples=demos, shots=2)
    # two shared types first, then one; RE's demo is another task, the last is DOC itself
    assert overlap.job(DOC).prompts == [expected_prompt(ie_model, [DEMOS[1], DEMOS[3]], user)]
    order = Extractor(ie_model, task="NER", schema=schema, examples=demos, shots=3,
                      select="order")
    assert order.job(DOC).prompts == [expected_prompt(ie_model, [DEMOS[0], DEMOS[1], DEMOS[3]],
                                                      user)]
    none = Extractor(ie_model, task="NER", schema=schema, examples=demos, shots=0)
    assert none.job(DOC).prompts == [expected_prompt(ie_model, [], user)]
    # each schema chunk picks its own demonstrations
    chunked = Extractor(ie_model, task="NER", schema=["人物", "组织机构"], split_num=1,
                        examples=demos, shots=1)
    p1, p2 = chunked.job(DOC).prompts
    assert p1 == expected_prompt(ie_model, [DEMOS[0]], build_instruction("NER", ["人物"], DOC))
    assert p2 == expected_prompt(ie_model, [DEMOS[1]], build_instruction("NER", ["组织机构"], DOC))


def test_few_shot_answers_keep_the_grammar(ie_model, tmp_path: Path):
    schema = ["人物", "地理位置", "组织机构"]
    docs = ["郭碧婷与向佐在台北订婚。", "华为公司在深圳发布了新手机。"]
    from lamina.runtime.sampling import SamplingParams

    recs = list(extract_many(ie_model, docs, schema=schema, limits=SMALL,
                             examples=demo_file(tmp_path), shots=2,
                             params=SamplingParams.greedy(max_tokens=120)))
    for rec in recs:
        assert "error" not in rec and list(json.loads(rec["output"])) == schema


def test_demonstration_files_with_bad_records_are_refused(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"text": "只有文本"}\n{"instruction": "{\\"schema\\": []", "output": "{}"}\n',
                   encoding="utf-8")
    with pytest.raises(LaminaError, match="2 unusable record"):
        load_demos(bad)


RE_PROMPT_ZH = """你是一个电影领域的关系抽取系统，任务是判断上下文中给定的头实体与尾实体之间是什么关系。
关系类型只能是：导演，编剧。
只回答关系类型，写成一个JSON字符串。

示例：

上下文：《我家有喜2》是由丁仰国导演执导。
头实体（电视剧名称）：我家有喜
尾实体（人名）：丁仰国
关系："导演"

上下文：孔正锡，导演，2005年以《长腿叔叔》敲开电影界大门。
头实体（电影名称）：长腿叔叔
尾实体（人名）：孔正锡
关系："""

NER_PROMPT_EN = """You are a medical named entity recognition system. Your task: find the entities in the input text and give their types.
The entity types are: DISEASE, TEST.
Answer with one JSON list only: [{"entity": entity, "type": type}, ...], or [] when there is none.

Examples:

Input: MRI and PET are used.
Output: [{"entity": "MRI", "type": "TEST"}, {"entity": "PET", "type": "TEST"}]

Input: Research on Alzheimer's disease.
Output: """


def test_icl_prompt_strings():
    pair = icl_params(labels="导演,编剧", domain="电影", head_entity="长腿叔叔",
                      head_type="电影名称", tail_entity="孔正锡", tail_type="人名")
    shown = [IclExample("《我家有喜2》是由丁仰国导演执导。", "导演",
                        icl_params(head_entity="我家有喜", head_type="电视剧名称",
                                   tail_entity="丁仰国", tail_type="人名"))]
    assert build_prompt("re", "zh", "孔正锡，导演，2005年以《长腿叔叔》敲开电影界大门。", pair,
                        shown) == RE_PROMPT_ZH
    ner = [IclExample("MRI and PET are used.", [{"entity": "MRI", "type": "TEST"},
                                                {"entity": "PET", "type": "TEST"}])]
    assert build_prompt("ner", "en", "Research on Alzheimer's disease.",
                        icl_params(labels=["DISEASE", "TEST"], domain="medical"),
                        ner) == NER_PROMPT_EN
    # no domain, no labels, no examples: role, format, question
    assert build_prompt("rte", "zh", "鲁迅生于绍兴。", icl_params()) == (
        "你是一个三元组抽取系统，任务是找出输入文本中的所有（主语，谓语，宾语）三元组。\n"
        "只回答一个JSON列表：[[主语, 谓语, 宾语], ...]，没有三元组时回答[]。\n\n"
        "输入：鲁迅生于绍兴。\n输出：")


def seed_example_files(tmp_path: Path) -> dict[str, Path]:
    """Files in seed 002's data/ICL_Examples shapes."""
    shapes = {
        "ner": {"samples": [{"id": "x", "text": "阿尔茨海默病的研究发现tau蛋白有诊断价值。",
                             "data": [{"E": "DISEASE", "W": "阿尔茨海默病"},
                                      {"E": "BIOMARKER", "W": "tau蛋白"}]}]},
        "re": [{"text": "孔正锡，导演，2005年以《长腿叔叔》敲开电影界大门。", "head_type": "电影名称",
                "head_entity": "长腿叔叔", "tail_type": "人名", "tail_entity": "孔正锡",
                "relation": "导演"}],
        "ee": [{"text": "纳达尔击败梅德韦杰夫，夺得冠军。", "event_list": [
            {"event_type": "竞赛行为-胜负", "arguments": [{"role": "胜者", "argument": "纳达尔"},
                                                     {"role": "败者", "argument": "梅德韦杰夫"}]}]}],
        "rte": [{"text": "《来自星星的你》是由张太侑导演", "labels": [["《来自星星的你》", "导演", "张太侑"]]}],
    }
    shapes["da"] = shapes["re"]
    out = {}
    for task, data in shapes.items():
        out[task] = tmp_path / f"{task}_ch.json"
        out[task].write_text(json.dumps(data, ensure_ascii=False, indent=3), encoding="utf-8")
    return out


def test_seed_icl_example_files_load_into_lamina_answers(tmp_path: Path):
    files = seed_example_files(tmp_path)
    assert load_examples(files["ner"], "ner")[0].answer == [
        {"entity": "阿尔茨海默病", "type": "DISEASE"}, {"entity": "tau蛋白", "type": "BIOMARKER"}]
    re_ex = load_examples(files["re"], "re")[0]
    assert re_ex.answer == "导演" and re_ex.params.head_entity == "长腿叔叔"
    assert load_examples(files["ee"], "ee")[0].answer[0]["arguments"][1] == {
        "role": "败者", "argument": "梅德韦杰夫"}
    assert load_examples(files["rte"], "rte")[0].answer == [["《来自星星的你》", "导演", "张太侑"]]
    da = load_examples(files["da"], "da")[0]
    assert da.text == "导演" and da.answer[0]["head_entity"] == "长腿叔叔"
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "x", "head_entity": "a"}]', encoding="utf-8")
    with pytest.raises(LaminaError, match="example 1: \"no 'head_type' field\""):
        load_examples(broken, "re")


@pytest.mark.parametrize("task", ["ner", "re", "ee", "rte", "da"])
def test_every_icl_task_answers_in_its_grammar(wild_model, tmp_path: Path, task: str):
    """The random base model wanders through the grammar; every answer still parses
    and names only the labels."""
    labels = ["人物", "地点"]
    items = [{"id": str(i), "text": t, "head_entity": "孔正锡", "head_type": "人名",
              "tail_entity": "长腿叔叔", "tail_type": "电影"}
             for i, t in enumerate(["孔正锡，导演。", "郭碧婷在台北订婚。"])]
    from lamina.runtime.sampling import SamplingParams

    recs = list(extract_many(wild_model, items, task=task, style="icl", limits=SMALL,
                             icl=icl_params(labels=labels),
                             examples=seed_example_files(tmp_path)[task], shots=1,
                             params=SamplingParams(temperature=1.0, seed=7, max_tokens=200)))
    for rec in recs:
        assert "error" not in rec, rec
        json.loads(rec["answer"])
        if task == "da":
            assert all(s["head_type"] in labels for s in rec["result"]["samples"])
        elif task == "re":
            (relation,) = rec["result"]
            assert relation in labels and rec["result"][relation] == [
                {"subject": "孔正锡", "object": "长腿叔叔"}]
        else:
            assert set(rec["result"]) <= set(labels)


def test_icl_on_the_command_line_and_scored_by_eval(chat_gguf, tmp_path: Path):
    env = {**os.environ, "COLUMNS": "200"}
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "鲁迅生于绍兴。", "entity": [
        {"entity": "鲁迅", "entity_type": "人物"}]}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "lamina", "extract", str(chat_gguf), "-i",
                           str(src), "-o", str(out), "--format", "icl", "--task", "ner",
                           "--labels", "人物,地点", "--max-items", "2", "--max-chars", "3",
                           "--max-tokens", "120", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(out.read_text(encoding="utf-8"))
    assert list(json.loads(rec["output"])) == ["人物", "地点"] and rec["label"][0]["entity"] == "鲁迅"
    res = subprocess.run([sys.executable, "-m", "lamina", "eval", "--pred", str(out), "--task",
                          "NER", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["f1"]["levels"]["entity"]["gold"] == 1
    for args, message in ((["--labels", "a"], "--labels only apply with --format icl"),
                          (["--format", "icl"], "--format icl needs --task"),
                          (["--format", "icl", "--task", "pos"], "Unknown in-context")):
        bad = subprocess.run([sys.executable, "-m", "lamina", "extract", str(chat_gguf), *args,
                              "文本"], capture_output=True, text=True, timeout=120, env=env)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr
    re_bad = subprocess.run([sys.executable, "-m", "lamina", "extract", str(chat_gguf), "--format",
                             "icl", "--task", "re", "文本", "--threads", "1"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert "head_entity, head_type, tail_entity, tail_type missing" in re_bad.stdout + re_bad.stderr
