"""lamina's greedy tokens on real GGUF files equal a plain llama-cpp-python loop's.

The reference (tests/realmodels/reference.py) is written from llama.cpp's API
alone: its tokenizer's own BOS rule, chunked prompt evaluation, argmax. Tokens
are compared, not only text.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lamina.runtime.sampling import SamplingParams
from tests.realmodels.conftest import NEWS, SCHEMA

PROMPTS = ["The capital of France is", "康有为是广东南海人，他", "def fibonacci(n):\n"]
N = 24


def greedy(n: int = N) -> SamplingParams:
    return SamplingParams.greedy(max_tokens=n)


def test_the_files_bos_rule_decides(real):
    m, ref = real.model, real.ref
    assert m.add_bos == (real.name == "gemma3")  # Gemma asks for BOS, SmolLM2 does not
    for p in PROMPTS:
        assert m.tokenize(p) == ref.tokenize(p)
    # a prompt that renders the BOS text itself gets no second one
    if m.add_bos:
        assert m.tokenize(m.bos_text + "Hello") == m.tokenize("Hello")
        assert m.tokenize("Hello")[0] == m.bos_id


@pytest.mark.parametrize("prompt", PROMPTS)
def test_generate_without_template_equals_the_plain_loop(real, prompt):
    text = real.model.generate(prompt, greedy())
    want = real.ref.greedy(real.ref.tokenize(prompt), N)
    assert real.model.last_stats.tokens == want
    assert text == real.ref.detokenize(want)


def test_presence_and_frequency_penalties_equal_their_definitions(real):
    """OpenAI's penalties, applied by the reference in numpy, on a real vocabulary."""
    prompt = PROMPTS[2]
    ids = real.ref.tokenize(prompt)
    want = real.ref.greedy(ids, N, presence=1.5, frequency=0.5)
    assert want != real.ref.greedy(ids, N)
    real.model.generate(prompt, greedy().replace(presence_penalty=1.5, frequency_penalty=0.5))
    assert real.model.last_stats.tokens == want


def test_generate_with_the_raw_template_keeps_the_bos(real):
    """``--template raw`` used to drop the BOS Gemma needs ("likely to be considered ...")."""
    raw = real.model.bind_template("raw")
    tokens = real.model.chat_tokens([{"role": "user", "content": PROMPTS[0]}], raw)
    assert tokens == real.ref.tokenize(PROMPTS[0])
    out = subprocess.run(
        [sys.executable, "-m", "lamina", "generate", str(real.path), "--prompt", PROMPTS[0],
         "--template", "raw", "--temp", "0", "--repeat-penalty", "1", "--max-tokens", str(N),
         "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    want = real.ref.detokenize(real.ref.greedy(real.ref.tokenize(PROMPTS[0]), N))
    assert out.stdout.strip() == want.strip()


def test_chat_with_the_files_template_equals_the_plain_loop(real):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    # The file's own template (SmolLM2); Gemma base has none, so lamina's default.
    source = real.model.metadata.get("tokenizer.chat_template", real.model.template.jinja)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    fmt = Jinja2ChatFormatter(source, eos_token=real.model.eos_text,
                              bos_token=real.model.bos_text)
    prompt = fmt(messages=messages).prompt
    want = real.ref.greedy(real.ref.tokenize(prompt), N)
    assert real.model.chat_tokens(messages) == real.ref.tokenize(prompt)
    real.model.chat(messages, greedy())
    assert real.model.last_stats.tokens == want


def _ie_prompts(real):
    from lamina.ie.api import Extractor

    ex = Extractor(real.model, task="NER", schema=SCHEMA, use_grammar=False)
    return [ex.job(t).prompts[0] for t in NEWS[:8]]


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_extraction_tokens_equal_the_plain_loop(real, batch):
    """Free decoding (the plain loop has no grammar), sequentially and on the engine."""
    from lamina.runtime import engine

    prompts = _ie_prompts(real)
    want = [real.ref.greedy(real.ref.tokenize(p), 48) for p in prompts]
    if batch == 1:
        got = []
        for p in prompts:
            real.model.generate(p, greedy(48))
            got.append(real.model.last_stats.tokens)
    else:
        done = dict(engine.complete_many(real.model, prompts, greedy(48), n_seq=batch))
        got = [done[i].tokens for i in range(len(prompts))]
    assert got == want


def test_concurrent_requests_on_a_shared_prefix_equal_the_plain_loop(real):
    """What `lamina serve --parallel 8` does with a common system prompt: 16 requests on
    8 sequences, the shared start evaluated once as the engine's prefix, the queued ones
    admitted while the others decode. (With their prompt chunks packed into the others'
    decoding calls, `exact=False`, 5 of SmolLM2's 16 answers changed.)"""
    from lamina.runtime.engine import BatchEngine

    system = ("You are the help desk of a public library. " * 12).strip()
    prompts = [f"{system}\nQuestion {i}: {q}\nAnswer:" for i, q in enumerate(
        ["Where are the maps?", "Can I print here?", "When do you open?", "Is there wifi?",
         "How many books may I borrow?", "Do you have newspapers?", "Where is the toilet?",
         "Can children come alone?", "Is the cafe open?", "Can I return books late?",
         "Where is the history section?", "Do you lend e-books?", "Can I bring my dog?",
         "Is parking free?", "Do you have study rooms?", "Who is the librarian?"])]
    tokens = [real.ref.tokenize(p) for p in prompts]
    want = [real.ref.greedy(t, 32) for t in tokens]
    shared = 0
    while all(t[shared] == tokens[0][shared] for t in tokens):
        shared += 1
    with BatchEngine(real.model, n_seq_max=8, n_ctx_per_seq=512) as eng:
        assert eng.set_prefix(tokens[0][:shared]) > 0
        reqs = [eng.submit(t, greedy(32)) for t in tokens]
        eng.run(reqs)
        assert eng.stats()["prompt_shared"] > 0
    assert [r.tokens for r in reqs] == want


def test_grammar_extraction_is_the_same_for_every_batch_and_thread_count(real):
    """30 documents, schema grammar on: batch 1, 4 and 16, 1 and 2 threads agree 30/30."""
    import lamina
    from lamina.ie.api import extract_many

    kw = dict(task="NER", schema=SCHEMA, params=greedy(48))
    records = list(extract_many(real.model, NEWS, batch=1, **kw))
    assert len(records) == 30 and all(r["finish_reason"] in ("stop", "length") for r in records)
    base = [r["output"] for r in records]
    for batch in (4, 16):
        assert [r["output"] for r in extract_many(real.model, NEWS, batch=batch, **kw)] == base
    with lamina.load(real.path, n_threads=1) as one:
        assert [r["output"] for r in extract_many(one, NEWS, batch=4, **kw)] == base


def test_serve_answers_equal_the_plain_loop(real):
    import httpx

    from tests.server.conftest import start_server, stop_server

    srv = start_server(real.path, "--parallel", "4")
    try:
        for prompt in PROMPTS[:2]:
            r = httpx.post(f"{srv.v1}/completions", timeout=120, json={
                "prompt": prompt, "max_tokens": N, "temperature": 0, "repeat_penalty": 1.0})
            assert r.status_code == 200, r.text
            want = real.ref.detokenize(real.ref.greedy(real.ref.tokenize(prompt), N))
            assert r.json()["choices"][0]["text"] == want
    finally:
        stop_server(srv)


@pytest.mark.slow
def test_ray_two_workers_write_what_the_local_run_writes(gemma, news_file, tmp_path):
    pytest.importorskip("ray")
    common = [sys.executable, "-m", "lamina", "extract", str(gemma.path), "-i", str(news_file),
              "--task", "NER", "--schema", json.dumps(SCHEMA, ensure_ascii=False),
              "--max-tokens", "48", "--threads", "1"]
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    for out, extra in ((local, ["--batch", "4"]), (ray, ["--ray", "--workers", "2"])):
        run = subprocess.run(common + ["-o", str(out), *extra], capture_output=True, text=True,
                             timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
    a = [json.loads(x)["output"] for x in local.read_text(encoding="utf-8").splitlines()]
    b = [json.loads(x)["output"] for x in ray.read_text(encoding="utf-8").splitlines()]
    assert len(a) == 30 and a == b
