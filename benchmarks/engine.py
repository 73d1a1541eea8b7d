"""Batched extraction on the native engine vs one document at a time.

64 documents, a 6-type NER schema, greedy grammar-constrained decoding, on a
Q4_K_M synthetic LLaMA of ~136M parameters (a 32000-piece vocabulary shaped
like Chinese-LLaMA's: one piece per CJK character, see bigmodel.py), all three
ways with the same threads:

* plain llama-cpp-python: ``Llama.create_completion`` per document (prompt and
  GBNF grammar built once, as someone scripting it by hand would);
* lamina sequential: ``extract_many(batch=1)`` (``Model.generate`` per document);
* lamina engine: ``extract_many(batch=N)`` on ``lamina._native``, N being the
  batch ``lamina extract`` picks by default unless ``--batch`` says otherwise.

The whole document set runs ``--rounds`` times, the three ways taking turns in
a rotating order, so a machine that gets busier mid-run slows all of them.

    python benchmarks/engine.py [--docs 64] [--batch N] [--threads 2] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, Timer, llama_spec, print_table, save_result  # noqa: E402

#: ~136M parameters: 6 layers of 1024 wide (GQA 16/8 heads) and a 32000 vocabulary.
ENGINE_SPEC = llama_spec(hidden_size=1024, intermediate_size=2816, num_hidden_layers=6,
                          num_attention_heads=16, num_key_value_heads=8)
SCHEMA = ["人物", "地理位置", "组织机构", "时间", "职位", "产品"]
NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏"]
PLACES = ["北京", "上海", "杭州", "深圳", "南京", "武汉", "成都", "西安"]
ORGS = ["清华大学", "华为公司", "人民医院", "浙江大学", "阿里巴巴", "中国银行"]


def documents(n: int) -> list[str]:
    """Short news-like sentences of varying length (deterministic)."""
    docs = []
    for i in range(n):
        who, where = NAMES[i % len(NAMES)], PLACES[(i * 3) % len(PLACES)]
        org = ORGS[i % len(ORGS)]
        text = f"{2000 + i % 24}年{1 + i % 12}月，{who}在{where}的{org}担任工程师，负责新产品的研发。"
        docs.append(text + "会后他接受了记者的采访。" * (i % 3))
    return docs


def n_params(spec: dict[str, Any]) -> int:
    from bigmodel import _tensor_shapes

    total = 0
    for _, shape in _tensor_shapes(spec):
        count = 1
        for d in shape:
            count *= d
        total += count
    return total


def ensure_model(work: Path) -> Path:
    """Q4_K_M GGUF of ENGINE_SPEC, built once under ``work/engine``."""
    from bigmodel import ensure_quantized

    return ensure_quantized(work, "engine", ENGINE_SPEC)


class Plain:
    """What a user would script with llama-cpp-python alone."""

    def __init__(self, path: Path, grammar: str, threads: int, n_ctx: int,
                 max_tokens: int) -> None:
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        self.llm = llama_cpp.Llama(str(path), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, verbose=False)
        self.grammar = LlamaGrammar.from_string(grammar, verbose=False)
        self.max_tokens = max_tokens

    def run(self, prompts: list[str]) -> list[str]:
        outs = []
        for p in prompts:
            # The prompt text carries the template's literal "<s>": no second BOS.
            tokens = self.llm.tokenize(p.encode("utf-8"), add_bos=False, special=True)
            r = self.llm.create_completion(tokens, max_tokens=self.max_tokens, temperature=0.0,
                                           repeat_penalty=1.0, grammar=self.grammar)
            outs.append(r["choices"][0]["text"])
        return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=None,
                    help="engine batch (default: what lamina extract picks for this model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=2,
                    help="times the whole document set runs, the ways taking turns")
    args = ap.parse_args()

    import lamina
    from lamina.ie.api import Extractor, extract_many
    from lamina.runtime.engine import cached_engine, default_n_seq
    from lamina.runtime.sampling import SamplingParams

    path = ensure_model(WORK)
    docs = documents(args.docs)
    params = SamplingParams.greedy(max_tokens=args.max_tokens)
    model = lamina.load(path, n_ctx=args.ctx, n_threads=args.threads)
    ex = Extractor(model, task="NER", schema=SCHEMA)
    jobs = [ex.job(d) for d in docs]
    prompts = [j.prompts[0] for j in jobs]
    grammar = jobs[0].grammars[0]
    assert grammar is not None and all(j.grammars[0] == grammar for j in jobs)
    lengths = [len(model.tokenize(p)) for p in prompts]
    n_prompt = sum(lengths)
    batch = args.batch or default_n_seq(model, max(lengths) + args.max_tokens)
    plain_runner = Plain(path, grammar, args.threads, args.ctx, args.max_tokens)

    def sequential(part: list[str]) -> list[dict]:
        return list(extract_many(model, part, task="NER", schema=SCHEMA, params=params))

    def engine(part: list[str]) -> list[dict]:
        return list(extract_many(model, part, task="NER", schema=SCHEMA, params=params,
                                 batch=batch))

    def fast(part: list[str]) -> list[dict]:
        return list(extract_many(model, part, task="NER", schema=SCHEMA, params=params,
                                 batch=batch, exact=False))

    # Warm-up (page the weights in, build the engine context once: it is
    # cached on the model and sized for the longest document).
    sequential(docs[:2])
    fast(docs)  # its own cached context; the exact one is built last and measured below
    engine(docs)
    plain_runner.run(prompts[:2])
    native = cached_engine(model)
    assert native is not None
    before = native.stats()

    seconds = {"plain": 0.0, "seq": 0.0, "engine": 0.0, "fast": 0.0}
    outputs: dict[str, list] = {"plain": [], "seq": [], "engine": [], "fast": []}
    ways = [("plain", lambda: plain_runner.run(prompts)), ("seq", lambda: sequential(docs)),
            ("engine", lambda: engine(docs))]
    for r in range(args.rounds):
        for name, fn in ways[r % 3:] + ways[:r % 3]:
            with Timer() as t:
                outputs[name] = fn()
            seconds[name] += t.seconds
    assert cached_engine(model) is native, "the engine context was rebuilt mid-run"
    after = native.stats()
    fast(docs[:2])  # builds the fast context
    for _ in range(args.rounds):
        with Timer() as t:
            outputs["fast"] = fast(docs)
        seconds["fast"] += t.seconds
    model.close()
    seq, eng, plain = outputs["seq"], outputs["engine"], outputs["plain"]

    same = [x["result"] for x in seq] == [x["result"] for x in eng]
    plain_same = [x["output"] for x in seq] == [
        ex.finish(j, [_answer(t)])["output"] for j, t in zip(jobs, plain, strict=True)]
    n = len(docs) * args.rounds
    t_plain, t_seq, t_eng = seconds["plain"], seconds["seq"], seconds["engine"]
    t_fast = seconds["fast"]
    fast_same = sum(a["output"] == b["output"] for a, b in zip(seq, outputs["fast"], strict=True))
    decode_s = after["decode_seconds"] - before["decode_seconds"]
    sample_s = after["sample_seconds"] - before["sample_seconds"]
    fallbacks = after["grammar_fallbacks"] - before["grammar_fallbacks"]
    generated = after["generated"] - before["generated"]
    rows = [
        ["llama-cpp-python, per document", f"{t_plain:.1f}", f"{n / t_plain:.2f}",
         "1.00x", "baseline" if plain_same else "baseline (other text)"],
        ["lamina sequential (batch 1)", f"{t_seq:.1f}", f"{n / t_seq:.2f}",
         f"{t_plain / t_seq:.2f}x", "reference"],
        [f"lamina engine (batch {batch})", f"{t_eng:.1f}", f"{n / t_eng:.2f}",
         f"{t_plain / t_eng:.2f}x", "identical" if same else "DIFFERENT"],
        [f"--fast-batch engine (batch {batch})", f"{t_fast:.1f}", f"{n / t_fast:.2f}",
         f"{t_plain / t_fast:.2f}x", f"{fast_same}/{len(docs)} identical"],
    ]
    title = (f"NER extraction, {len(docs)} docs x {args.rounds} rounds, 6-type schema, Q4_K_M {n_params(ENGINE_SPEC) / 1e6:.0f}M "
             f"params, {args.threads} threads, greedy + grammar, max {args.max_tokens} tokens "
             f"({n_prompt} prompt tokens per round)")
    columns = ["way", "seconds", "docs/s", "vs plain", "results"]
    where = (f"Engine time: {decode_s:.1f} s in llama_decode, {sample_s:.1f} s sampling; "
             f"{fallbacks} of {generated} greedy tokens were rejected by the grammar first.")
    print_table(title, columns, rows)
    print(where)
    save_result("engine", title, columns, rows,
                notes="Same model, documents, prompts, grammar and threads in one run; "
                      f"the ways take turns over {args.rounds} rounds. {where}",
                extra={"batch": batch, "docs": len(docs), "rounds": args.rounds,
                       "prompt_tokens": n_prompt, "params": n_params(ENGINE_SPEC),
                       "decode_seconds": round(decode_s, 2), "sample_seconds": round(sample_s, 2),
                       "grammar_fallbacks": fallbacks, "generated": generated})


def _answer(text: str) -> Any:
    from lamina.ie.api import Answer

    return Answer(text, "stop")


if __name__ == "__main__":
    main()
