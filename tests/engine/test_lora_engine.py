"""The engine on a model loaded with LoRA adapters decodes what the sequential path does.

(``lamina serve --lora`` and ``lamina extract --lora`` batch on the engine; its
context gets the adapters the model's own context has.)
"""

from __future__ import annotations

import pytest


def test_engine_answers_with_the_adapters_equal_the_sequential_ones(chat_gguf, good_lora):
    import lamina
    from lamina.runtime.engine import BatchEngine, native_available
    from lamina.runtime.sampling import SamplingParams

    if not native_available():
        pytest.skip("lamina._native is not built")
    params = SamplingParams.greedy(12)
    prompts = ["张三去了北京。", "李四在上海工作，", "天气"]
    with lamina.load(chat_gguf, n_ctx=512, n_threads=2) as plain:
        without = [plain.generate(p, params) for p in prompts]
    with lamina.load(chat_gguf, n_ctx=512, n_threads=2, lora=[good_lora]) as m:
        want = [m.generate(p, params) for p in prompts]
        with BatchEngine(m, n_seq_max=3) as eng:
            reqs = [eng.submit(p, params) for p in prompts]
            eng.run(reqs)
    assert [r.text for r in reqs] == want
    assert want != without  # the adapter changes the answers, so it was applied
