"""GGUF metadata keys lamina writes on top of llama.cpp's standard ones.

Written by ``lamina convert`` and read by the runtime (template auto-detection)
and ``lamina info`` (provenance). Kept in one table so writer and readers agree.
"""

from __future__ import annotations

#: Name of the lamina chat template chosen at convert time (``alpaca2``...).
TEMPLATE_NAME = "lamina.chat_template.name"
#: JSON string: base model, LoRA adapters in merge order, diff, checksums, outtype.
PROVENANCE = "lamina.provenance"
#: lamina version that wrote the file.
WRITER_VERSION = "lamina.version"
#: Standard llama.cpp key for the Jinja chat template text (other tools read it).
CHAT_TEMPLATE_JINJA = "tokenizer.chat_template"
