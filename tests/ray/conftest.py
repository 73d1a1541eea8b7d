"""Ray test fixtures: one local Ray instance per test module, and a shared document set.

Ray takes seconds to start, so each module that needs it starts one 2-CPU
instance (what ``--workers 2`` on this machine uses) and shuts it down at the
end; ``run_extract`` reuses an instance that is already running.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Extraction settings small enough for the tiny model: greedy, bounded grammar. KG,
#: because on the synthetic model it gives answers that differ between documents
#: (NER answers are all empty lists, which would make the comparison weak).
TASK = "KG"
SCHEMA = [{"entity_type": "人物", "attributes": ["出生地"]}]
MAX_TOKENS = 64
MAX_ITEMS = 2
MAX_CHARS = 4


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from lamina.ray.runner import _quiet_native_logs, _quiet_ray_data

    _quiet_ray_data()
    with _quiet_native_logs():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    yield
    ray.shutdown()


def write_docs(path: Path, n: int = 100) -> Path:
    """``n`` JSONL documents (a third with their own id), plus one malformed line and one
    blank line, so ids, the errors file and line numbers are all exercised."""
    rng = random.Random(7)
    names = ["康有为", "梁启超", "谭嗣同", "严复", "孙中山", "鲁迅", "胡适", "李白"]
    places = ["广东", "北京", "上海", "湖南", "浙江", "四川"]
    lines = []
    for i in range(n):
        text = f"{rng.choice(names)}出生于{rng.choice(places)}，后来去了{rng.choice(places)}。"
        record = {"id": f"doc-{i}", "text": text} if i % 3 == 0 else {"text": text}
        lines.append(json.dumps(record, ensure_ascii=False))
        if i == n // 2:
            lines.append('{"text": broken')
        if i == n * 3 // 4:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_docs(tmp_path_factory.mktemp("ray-docs") / "docs.jsonl")


def extract_args(model: Path, input_path: Path, output: Path) -> list[str]:
    """``lamina extract`` arguments shared by the local and the Ray runs."""
    return ["extract", str(model), "--input", str(input_path), "--output", str(output),
            "--task", TASK, "--schema", json.dumps(SCHEMA, ensure_ascii=False), "--max-tokens", str(MAX_TOKENS),
            "--max-items", str(MAX_ITEMS), "--max-chars", str(MAX_CHARS), "--threads", "1"]


@pytest.fixture(scope="module")
def local_run(chat_gguf: Path, docs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local ``lamina extract`` output for ``docs``: what the Ray path must reproduce."""
    from click.testing import CliRunner

    from lamina.cli import cli

    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    result = CliRunner().invoke(cli, extract_args(chat_gguf, docs, out))
    assert result.exit_code == 0, result.output
    return out
