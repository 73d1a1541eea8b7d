"""`lamina build` then `lamina extract` (IEPile instruction + grammar) for each BPE family.

The models are random, so what is checked is the path: the built file runs, carries the
template the IEPile LoRA of that family was trained with, and grammar decoding over its
byte-level BPE vocabulary yields a JSON answer keyed by the schema, in schema order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCHEMA = ["人物", "地理位置"]
DOCS = ["康有为是广东南海人。", "Alice moved from Paris to Berlin in 2019."]


def lamina(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("family, template, extra", [
    pytest.param("qwen2", "qwen", ["--no-verify"], marks=pytest.mark.slow),
    pytest.param("llama3", "alpaca", [], marks=pytest.mark.slow),
])
def test_build_then_extract(family, template, extra, bpe_family, tmp_path):
    fam = bpe_family(family)
    out = tmp_path / "m.gguf"
    proc = lamina("build", fam.base, "--lora", fam.lora, "--type", "Q8_0", "--template",
                  template, "-o", out, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["output_bytes"] == out.stat().st_size
    if not extra:
        assert report["quality"]["top1_agreement"] >= 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
    info = json.loads(lamina("info", out, "--json").stdout)
    assert info["chat_template_name"] == template and info["architecture"] == \
        {"qwen2": "qwen2", "llama3": "llama"}[family]

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(DOCS)), encoding="utf-8")
    records = tmp_path / "out.jsonl"
    proc = lamina("extract", out, "--schema", json.dumps(SCHEMA, ensure_ascii=False), "-i", docs,
                  "-o", records, "--max-items", "2", "--max-chars", "4", "--max-tokens", "200",
                  "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in recs] == ["0", "1"]
    for r in recs:
        assert list(json.loads(r["output"])) == SCHEMA == list(r["result"])
