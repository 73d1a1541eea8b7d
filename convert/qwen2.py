"""The Qwen2 family as data: Qwen1.5, Qwen2 and Qwen2.5 (``Qwen2ForCausalLM``).

A LLaMA-shaped decoder with biases on q/k/v, NEOX-style rope (llama.cpp's
QWEN2 architecture rotates halves like HF does, so q/k rows stay as they are),
often tied embeddings on the small sizes, and more embedding rows than
tokens (151,936 rows for 151,646 tokens): the vocabulary is padded with
``[PADn]`` tokens of type UNUSED, as llama.cpp's converter does.
"""

from __future__ import annotations

from lamina.convert.family import Family

QWEN2 = Family(
    name="Qwen2",
    architectures=("Qwen2ForCausalLM",),
    model_types=("qwen2",),
    gguf_arch="QWEN2",
    rotary_permute=False,
    bias_modules=("q_proj", "k_proj", "v_proj"),
    covers="Qwen1.5, Qwen2, Qwen2.5",
)
