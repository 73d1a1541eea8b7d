"""Quantize GGUF files with llama.cpp's own quantizer, measure the quality lost, inspect files.

- ``types``: the one table of quantization types (``lamina quantize --list``)
- ``quantizer``: ``quantize()`` via libllama's ``llama_model_quantize`` (in ``worker``)
- ``imatrix``: importance-matrix files from llama-imatrix (.gguf and legacy .dat)
- ``quality``: ``verify()``: perplexity, KL divergence, top-1 agreement
- ``build``: ``build()``: convert + quantize (+ verify) with a self-cleaning temp folder
- ``info``: ``model_info()`` and the GGUF input checks, from the header only
"""
