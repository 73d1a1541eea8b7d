"""`lamina extract` options, each checked by its effect on the record.

With ``--no-grammar`` the answer is the model's free greedy text, and this tiny model's
free text is never JSON, so the record keeps it verbatim in ``output``. That makes
each prompt option visible: the output must equal llama.cpp's plain greedy
continuation (tests/realmodels/reference.py) of the prompt written here by hand from
IEPile's published instructions (or seed 000's pair format) and the template's
published layout. The command runs in-process (click's CliRunner).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamina.cli import cli
from tests.fixtures.prompts import alpaca2, chatml
from tests.realmodels.reference import Reference

SCHEMA = ["人物", "地理位置"]
TEXT = "康有为是广东人。"
MAX = 24
#: IEPile's NER instructions (zjunlp/IEPile, ie2instruction), as published.
IEPILE_NER = {
    "zh": "你是专门进行实体抽取的专家。请从input中抽取出符合schema定义的实体，不存在的实体类型返回空列表。"
          "请按照JSON字符串的格式回答。",
    "en": "You are an expert in named entity recognition. Please extract entities that match the "
          "schema definition from the input. Return an empty list if the entity type does not "
          "exist. Please respond in the format of a JSON string.",
}


def iepile(schema: list[str], text: str, lang: str = "zh") -> str:
    return json.dumps({"instruction": IEPILE_NER[lang], "schema": schema, "input": text},
                      ensure_ascii=False)


def pairs_turn(schema: list[str], text: str) -> str:
    """Seed 000's NER turn: the categories, '_' inside a pair, '&' between pairs."""
    names = ",".join(f"'{c}'" for c in schema)
    return (f"你现在是一个命名实体识别模型，请你帮我抽取出命名实体识别类别为{names}的二元组，"
            f"二元组内部用'_'连接，二元组之间用'&'分割。\n{text}")


@pytest.fixture(scope="module")
def ref(chat_gguf: Path) -> Reference:
    return Reference(chat_gguf, n_ctx=4096, n_threads=1)


def raw(ref: Reference, prompt: str, n: int = MAX) -> str:
    """llama.cpp's greedy continuation of ``prompt``, as text."""
    return ref.detokenize(ref.greedy(ref.tokenize(prompt), n))


def extract(model: Path, *args: str, text: str = TEXT) -> dict:
    result = CliRunner().invoke(cli, ["extract", str(model), "--schema",
                                      json.dumps(SCHEMA, ensure_ascii=False), "--max-tokens",
                                      str(MAX), "--threads", "1", "--batch", "1", *args, text],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_no_grammar_gives_the_models_raw_text(chat_gguf, ref):
    rec = extract(chat_gguf, "--no-grammar")
    assert rec["output"] == raw(ref, alpaca2(iepile(SCHEMA, TEXT)))
    assert "error" in rec and rec["result"] == {"人物": [], "地理位置": []}
    # with the grammar (and room for the whole answer): JSON with the schema's keys
    constrained = extract(chat_gguf, "--max-tokens", "60")
    assert list(json.loads(constrained["output"])) == SCHEMA and "error" not in constrained


def test_lang_en_uses_the_english_instruction(chat_gguf, ref):
    rec = extract(chat_gguf, "--no-grammar", "--lang", "en")
    assert rec["output"] == raw(ref, alpaca2(iepile(SCHEMA, TEXT, "en")))
    assert rec["output"] != raw(ref, alpaca2(iepile(SCHEMA, TEXT)))


def test_split_num_asks_for_each_chunk_separately(chat_gguf, ref):
    rec = extract(chat_gguf, "--no-grammar", "--split-num", "1")
    assert rec["output"] == "\n".join(raw(ref, alpaca2(iepile([k], TEXT))) for k in SCHEMA)


def test_format_pairs_uses_the_seed_000_prompt(chat_gguf, ref):
    rec = extract(chat_gguf, "--no-grammar", "--format", "pairs")
    assert rec["output"] == raw(ref, alpaca2(pairs_turn(SCHEMA, TEXT))).strip()


def test_template_option_wraps_the_instruction(chat_gguf, ref):
    rec = extract(chat_gguf, "--no-grammar", "--template", "chatml")
    assert rec["output"] == raw(ref, chatml(iepile(SCHEMA, TEXT)))


def test_ctx_sets_the_input_budget(chat_gguf, ref):
    """--ctx leaves ctx - --max-tokens prompt tokens (counted here by llama.cpp's
    tokenizer): a long document is cut to the longest start whose prompt fits, and
    one whose instruction alone does not fit fails with both numbers."""
    text = "康有为是广东南海人，" * 40

    def n_prompt(doc: str) -> int:
        return len(ref.tokenize(alpaca2(iepile(SCHEMA, doc))))

    budget = 512 - MAX
    assert n_prompt("") < budget < n_prompt(text) < 2048 - MAX
    cut = extract(chat_gguf, "--ctx", "512", text=text)["truncated"]
    assert cut["max_input_tokens"] == budget and cut["input_chars"] == len(text)
    assert cut["prompt_tokens"] == n_prompt(text)
    kept = cut["kept_chars"]
    assert n_prompt(text[:kept]) <= budget < n_prompt(text[:kept + 1])
    assert "truncated" not in extract(chat_gguf, "--ctx", "2048", text=text)
    small = extract(chat_gguf, "--ctx", "128", text=text)
    assert small["finish_reason"] == "error"
    assert f"instruction alone {n_prompt('')}, but at most {128 - MAX} fit" in small["error"]
