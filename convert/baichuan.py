"""The Baichuan family as data: Baichuan-7B/13B and Baichuan2-7B/13B (``BaichuanForCausalLM``).

A LLaMA-shaped decoder whose q/k/v projections are one fused ``W_pack`` of
[3 * hidden, hidden] rows, split into llama.cpp's three tensors (a LoRA on
``W_pack`` is merged first, so its lora_B rows land in the right part), with
LLaMA's rope layout. llama.cpp tells the sizes apart by layer count: 32 layers
run RoPE (7B), 40 layers ALiBi (13B); other depths load without positions.
Baichuan2's ``lm_head`` is a NormHead: its rows are normalised to unit length
after all merges, as Baichuan2's own code does at inference (llama.cpp's
converter writes them unnormalised, and the model then answers garbage).
"""

from __future__ import annotations

from lamina.convert.family import Family

BAICHUAN = Family(
    name="Baichuan",
    architectures=("BaichuanForCausalLM",),
    model_types=("baichuan",),
    gguf_arch="BAICHUAN",
    rotary_permute=True,
    covers="Baichuan/Baichuan2 7B (RoPE) and 13B (ALiBi)",
    fused=(("self_attn.W_pack", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),),
    norm_head_vocab=(125696,),
)
