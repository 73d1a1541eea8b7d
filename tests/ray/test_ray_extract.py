"""``lamina extract --ray`` on a local 2-worker Ray instance against the local path.

The local ``lamina extract`` output (greedy) is the reference: the Ray run must
write the same records, in the same order, and the same errors file, including
when a worker dies mid-run and Ray re-runs its batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ray.conftest import MAX_CHARS, MAX_ITEMS, MAX_TOKENS, SCHEMA, TASK

pytest.importorskip("ray")


def ray_options(model: Path, input_path: Path | str, output: Path, **kw):
    from lamina.ie.grammar import GrammarLimits
    from lamina.ray.runner import RayExtractOptions
    from lamina.ray.worker import ExtractSettings

    settings = ExtractSettings(
        options=dict(task=TASK, schema=SCHEMA, lang="zh", split_num=None, use_grammar=True,
                     limits=GrammarLimits(MAX_ITEMS, MAX_CHARS), style="iepile"),
        batch=None, max_tokens=MAX_TOKENS)  # None: the local CLI's engine batch rule
    defaults = dict(model=model, input=str(input_path), output=output, settings=settings,
                    workers=2, threads=1, batch_size=4)
    defaults.update(kw)
    return RayExtractOptions(**defaults)


def errors_file(out: Path) -> Path:
    return out.with_name(f"{out.stem}.errors{out.suffix}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_workers_write_what_the_local_path_writes(ray_local, chat_gguf, docs, local_run,
                                                       tmp_path):
    from lamina.ray.runner import run_extract

    out = tmp_path / "ray.jsonl"
    report = run_extract(ray_options(chat_gguf, docs, out))
    assert (report.records_in, report.records_out, report.errors) == (101, 100, 1)
    assert report.records_in == report.records_out + report.errors
    assert "✓" in report.check
    ray_records, local_records = read_jsonl(out), read_jsonl(local_run)
    assert [r["result"] for r in ray_records] == [r["result"] for r in local_records]
    assert len({json.dumps(r["result"]) for r in local_records}) > 1, \
        "the fixture model gives one answer for every document: the comparison would be weak"
    assert out.read_bytes() == local_run.read_bytes()  # same records, same order, same bytes
    assert errors_file(out).read_text() == errors_file(local_run).read_text()
    assert read_jsonl(errors_file(out))[0]["line"] == 52
    assert [r["id"] for r in ray_records][:3] == ["doc-0", "2", "3"]


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_a_worker_failing_mid_run_loses_and_duplicates_nothing(ray_local, chat_gguf, docs,
                                                               local_run, tmp_path,
                                                               monkeypatch, mode):
    from lamina.ray.runner import FAIL_MODE_ENV, FAIL_ONCE_ENV, run_extract

    marker = tmp_path / "failed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, str(marker))
    monkeypatch.setenv(FAIL_MODE_ENV, mode)
    out = tmp_path / "ray.jsonl"
    report = run_extract(ray_options(chat_gguf, docs, out))
    assert marker.exists(), "the injected failure never happened"
    assert report.records_in == report.records_out + report.errors == 101
    records = read_jsonl(out)
    assert len({r["id"] for r in records}) == len(records) == 100
    assert out.read_bytes() == local_run.read_bytes()


def test_text_input_and_cli_flag(ray_local, chat_gguf, tmp_path, monkeypatch):
    """`lamina extract --ray --workers 2` on a text file: ids are line numbers, as locally.

    The paths are relative, and Ray's workers run in another directory: a bug once
    made them read a different file of the same name.
    """
    from click.testing import CliRunner

    from lamina.cli import cli
    from tests.ray.conftest import extract_args

    monkeypatch.chdir(tmp_path)
    Path("docs.txt").write_text("康有为是广东人。\n\n梁启超去了北京。\r\n严复在上海。", encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(cli, extract_args(chat_gguf, Path("docs.txt"), Path("local.jsonl")))
    assert first.exit_code == 0, first.output
    result = runner.invoke(cli, [*extract_args(chat_gguf, Path("docs.txt"), Path("ray.jsonl")),
                                 "--ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "records in 3 = 3 written + 0 errors ✓" in result.output
    remote = tmp_path / "ray.jsonl"
    assert [r["id"] for r in read_jsonl(remote)] == ["1", "3", "4"]
    assert remote.read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert not errors_file(remote).exists()


def test_empty_input_is_a_clear_error(ray_local, chat_gguf, tmp_path):
    from lamina.errors import InputError
    from lamina.ray.runner import run_extract

    src = tmp_path / "empty.jsonl"
    src.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match="holds no documents"):
        run_extract(ray_options(chat_gguf, src, out))
    assert not out.exists()


def test_non_utf8_input_is_a_clear_error(ray_local, chat_gguf, tmp_path):
    from lamina.errors import InputError
    from lamina.ray.runner import run_extract

    src = tmp_path / "gbk.txt"
    src.write_bytes("康有为是广东人。\n".encode("gbk"))
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match="not UTF-8"):
        run_extract(ray_options(chat_gguf, src, out))
    assert not out.exists()
