"""Teach a tiny synthetic model a few answers, so the demo shows real behaviour.

A random model produces gibberish, which proves nothing to a newcomer. The demo
family's "Alpaca" LoRA is therefore trained with peft for a few dozen steps on a
handful of chat answers and OneKE-style NER examples (written for lamina). The
trained answers must survive the whole pipeline -- LoRA merge, GGUF conversion,
4-bit quantization, llama.cpp inference -- which makes the demo an end-to-end
check as well as a show-case.

Needs the ``convert`` extra (torch, transformers, peft, sentencepiece).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (question, answer) chat pairs the demo model learns.
DEMO_CHATS: list[tuple[str, str]] = [
    ("请介绍一下西湖。", "西湖位于浙江省杭州市，是中国著名的风景名胜区。"),
    ("北京是哪个国家的首都？", "北京是中国的首都。"),
    ("你好", "你好！很高兴认识你。"),
    ("长江有多长？", "长江是中国最长的河流。"),
]

#: NER schema and (text, gold result) pairs in OneKE's output format.
DEMO_NER_SCHEMA: list[str] = ["人物", "地理位置", "组织机构"]
DEMO_NER_DOCS: list[tuple[str, dict[str, list[str]]]] = [
    ("张三在杭州的一家人工智能公司工作。",
     {"人物": ["张三"], "地理位置": ["杭州"], "组织机构": []}),
    ("李四毕业于清华大学，现在在北京大学担任教授。",
     {"人物": ["李四"], "地理位置": [], "组织机构": ["清华大学", "北京大学"]}),
    ("小明的妈妈在上海的市第一人民医院工作。",
     {"人物": ["小明"], "地理位置": ["上海"], "组织机构": ["市第一人民医院"]}),
    ("公司在深圳召开了新闻发布会。",
     {"人物": [], "地理位置": ["深圳"], "组织机构": []}),
]


@dataclass
class TrainExample:
    prompt_ids: list[int]
    answer_ids: list[int]


def demo_examples(template_name: str = "alpaca2") -> list[tuple[str, str]]:
    """(rendered prompt, answer) pairs: the chats and the NER instructions."""
    from lamina.ie.instructions import build_instruction
    from lamina.templates import get_template

    template = get_template(template_name)
    pairs = [(template.render([{"role": "user", "content": q}]), a) for q, a in DEMO_CHATS]
    for text, result in DEMO_NER_DOCS:
        instruction = build_instruction("NER", DEMO_NER_SCHEMA, text)
        pairs.append((template.render([{"role": "user", "content": instruction}]),
                      json.dumps(result, ensure_ascii=False)))
    return pairs


def encode_pair(sp: Any, prompt: str, answer: str) -> TrainExample:
    """Tokenize like llama.cpp will: literal <s> in the prompt is BOS, answer ends with EOS.

    The answer is tokenized on its own (so it starts with SentencePiece's
    word-start piece, "▁{" for JSON), as Chinese-Alpaca-2/OneKE training did.
    """
    ids: list[int] = []
    for i, part in enumerate(prompt.split("<s>")):
        if i > 0:
            ids.append(sp.bos_id())
        if part:
            ids.extend(sp.encode(part))
    return TrainExample(ids, sp.encode(answer) + [sp.eos_id()])


def train_lora(base_model: Any, tokenizer_model: Path, pairs: Sequence[tuple[str, str]],
               out_dir: Path, *, steps: int = 40, lr: float = 3e-3, r: int = 16, alpha: int = 32,
               seed: int = 0, on_step: Any = None) -> Path:
    """Train a PEFT LoRA (all linear layers + embed/lm_head in modules_to_save) and save it.

    Answers only contribute to the loss (prompt tokens are masked), so the model
    learns to respond, as instruction tuning does.
    """
    import copy

    import sentencepiece as spm
    import torch
    from peft import LoraConfig, get_peft_model

    from lamina.convert.tokenizer import write_hf_tokenizer_files

    torch.manual_seed(seed)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    data = [encode_pair(sp, p, a) for p, a in pairs]
    width = max(len(e.prompt_ids) + len(e.answer_ids) for e in data)
    ids = torch.zeros(len(data), width, dtype=torch.long)
    labels = torch.full((len(data), width), -100, dtype=torch.long)
    mask = torch.zeros(len(data), width, dtype=torch.long)
    for i, ex in enumerate(data):
        seq = ex.prompt_ids + ex.answer_ids
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(ex.prompt_ids): len(seq)] = torch.tensor(ex.answer_ids)
        mask[i, : len(seq)] = 1

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                        "gate_proj", "up_proj", "down_proj"],
                        modules_to_save=["embed_tokens", "lm_head"], task_type="CAUSAL_LM")
    model = get_peft_model(copy.deepcopy(base_model), config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    loss_value = float("nan")
    for step in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss_value = float(loss.item())
        if on_step is not None:
            on_step(step + 1, loss_value)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    write_hf_tokenizer_files(out_dir, tokenizer_model)
    (out_dir / "training.json").write_text(json.dumps(
        {"steps": steps, "lr": lr, "r": r, "alpha": alpha, "final_loss": loss_value,
         "examples": len(data)}, indent=2))
    return out_dir


@dataclass
class DemoFamily:
    """What ``lamina demo`` builds: a base and two patches, as users download them."""

    base: Path  # HF folder, base vocabulary
    lora_plus: Path  # extends the vocabulary, embed/lm_head in modules_to_save
    lora_alpaca: Path  # instruction-tuned on the demo chats and NER examples


def demo_spec() -> Any:
    """Hidden size 256 so every K-quant (Q4_K_M...) applies to every weight matrix."""
    from lamina.demo.checkpoints import TinyLlamaSpec

    return TinyLlamaSpec(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, seed=0)


def build_demo_family(root: Path, *, steps: int = 30, on_step: Any = None) -> DemoFamily:
    """Base (Chinese-LLaMA-like tokenizer) -> Plus LoRA (bigger vocab) -> trained Alpaca LoRA."""
    import torch

    from lamina.demo import checkpoints as syn

    torch.set_num_threads(max(1, torch.get_num_threads()))
    spec = demo_spec()
    base_tok = syn.train_tokenizer(root / "tokenizer_base", spec.vocab_size)
    ext_tok = syn.extend_tokenizer(base_tok, root / "tokenizer_extended")
    base = syn.random_llama(spec, syn.sp_vocab_size(base_tok))
    base_dir = syn.save_hf(base, root / "chinese-llama-tiny-hf", base_tok)
    resized = syn.resized_vocab(base, syn.sp_vocab_size(ext_tok), seed=spec.seed + 11)
    plus = syn.make_lora(resized, root / "chinese-llama-plus-lora-tiny", r=8, alpha=32,
                         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                  "up_proj", "down_proj"],
                         modules_to_save=["embed_tokens", "lm_head"], seed=spec.seed + 1,
                         tokenizer_model=ext_tok, safe=False)
    base_plus = syn.merged_with(resized, plus)
    alpaca = train_lora(base_plus, ext_tok, demo_examples(), root / "chinese-alpaca-plus-lora-tiny",
                        steps=steps, on_step=on_step)
    return DemoFamily(base=base_dir, lora_plus=plus, lora_alpaca=alpaca)
