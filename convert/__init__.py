"""Hugging Face / Meta checkpoints + LoRA patches or weight diffs -> one GGUF file.

Importing this package is cheap; torch, transformers and peft are imported only
inside the functions that need them (``pip install "lamina[convert]"``).
"""
