"""The GGUF's embedded tokenizer must split text exactly like SentencePiece does."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from tests.convert.conftest import llama

STRINGS = [
    # Chinese
    "北京是中国的首都。", "人工智能正在改变我们的生活方式", "今天天气很好", "西湖位于浙江省杭州市",
    "命名实体识别", "张三和李四在清华大学读书。", "会议将于下周三上午九点举行", "你好！",
    "长江、黄河", "龘靐齉爩", "𠀀𪚥", "鬱", "我喜欢读书、写字、听音乐", "机器学习需要数据和算力",
    # English
    "Hello world!", "The quick brown fox jumps over the lazy dog.", "hello", " hello",
    "hello ", "  two leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\n",
    "UPPER lower MiXeD", "don't won't can't", "e-mail: a.b@example.com", "https://x.org/a?b=1",
    "Numbers 3.14, 2024 and 42", "1234567890", "a", " ", "", "   ", "\n", "\n\n\n",
    # Mixed and rare
    "Mixed 中英文 text with numbers 123", "我们使用 LLaMA 模型和 LoRA 补丁", "GGUF文件 on CPU",
    "北京 has 21 million people", "emoji 🙂🚀👍🏽", "👨‍👩‍👧‍👦 family", "🇨🇳🇺🇸",
    "café naïve façade", "Ünïcödé ßtraße", "Ελληνικά", "русский текст", "日本語のテキスト",
    "한국어 텍스트", "عربى", "‰ § ¶ † ‡ • … ‽", "∑∫∂√∞≠≈", "「引号」『书名』【括号】",
    "全角ＡＢＣ１２３", "<s> not a control token </s>", "[INST] hi [/INST]", "a\u200bb",
    "\u3000全角空格\u3000", "x" * 200, "中" * 100, "Tab\t中\t文",
]


@pytest.fixture(scope="module")
def tokenizers(family, base_gguf, variant_gguf):
    return [
        (spm.SentencePieceProcessor(model_file=str(family.base_tokenizer)), llama(base_gguf)),
        (spm.SentencePieceProcessor(model_file=str(family.extended_tokenizer)),
         llama(variant_gguf("plus_alpaca"))),
    ]


def test_there_are_at_least_50_strings():
    assert len(STRINGS) >= 50


@pytest.mark.parametrize("which", [0, 1], ids=["base-vocab", "extended-vocab"])
def test_llama_cpp_tokenizes_like_sentencepiece(tokenizers, which):
    sp, llm = tokenizers[which]
    mismatches = []
    for text in STRINGS:
        expected = [sp.bos_id(), *sp.encode(text)]
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if got != expected:
            mismatches.append((text, expected, got))
    assert not mismatches, mismatches[:3]


def test_extended_vocab_uses_whole_word_pieces(tokenizers):
    sp, llm = tokenizers[1]
    ids = llm.tokenize("我们的人工智能".encode(), add_bos=False)
    assert "人工智能" in [sp.id_to_piece(i) for i in ids]


def test_detokenize_round_trips_through_byte_fallback(tokenizers):
    _, llm = tokenizers[0]
    for text in ["龘靐齉爩", "emoji 🙂🚀", "北京是中国的首都。"]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False)
        assert llm.detokenize(ids).decode("utf-8").strip() == text


def test_sentencepiece_without_dummy_prefix_tokenizes_the_same(family, tmp_path):
    """add_dummy_prefix=false in the model -> add_space_prefix=false in the GGUF."""
    import io

    from lamina.convert.pipeline import ConvertOptions, convert
    from lamina.demo.corpus import BASE_TEXT

    model = io.BytesIO()
    lines = [line for line in BASE_TEXT.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 4), model_writer=model, model_type="bpe", vocab_size=600,
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, num_threads=1, minloglevel=2, hard_vocab_limit=False)
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    (tok_dir / "tokenizer.model").write_bytes(model.getvalue())
    out = tmp_path / "nodummy.gguf"
    convert(ConvertOptions(base=family.base_hf, output=out, tokenizer=tok_dir, outtype="f16"))
    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model"))
    llm = llama(out)
    assert llm.metadata["tokenizer.ggml.add_space_prefix"] == "false"
    mismatches = []
    for text in STRINGS:
        expected = [sp.bos_id(), *sp.encode(text)]
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if got != expected:
            mismatches.append((text, expected, got))
    assert not mismatches, mismatches[:3]
    assert sp.encode("hello")[0] != sp.encode(" hello")[0]  # no prefix really means no prefix
