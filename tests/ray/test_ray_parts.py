"""The Ray runner's parts that need no Ray instance: line reading, the count check,
and the user errors raised before Ray starts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("ray")


def test_lines_are_numbered_across_chunk_boundaries():
    from lamina.ray.source import iter_numbered_lines

    data = "第一行\r\n\nsecond\n  \n最后一行".encode()
    got = list(iter_numbered_lines(io.BytesIO(data), "x.txt", chunk_bytes=3))
    assert got == [(1, "第一行"), (2, ""), (3, "second"), (4, "  "), (5, "最后一行")]


def test_non_utf8_input_names_the_file():
    from lamina.errors import InputError
    from lamina.ray.source import iter_numbered_lines

    with pytest.raises(InputError, match="not UTF-8"):
        list(iter_numbered_lines(io.BytesIO("中文\n".encode("gbk")), "gbk.txt"))


def _row(line: int, kind: str = "ok", path: str = "/d.jsonl") -> dict:
    return {"path": path, "line": line, "kind": kind, "failed": False, "json": f'"{line}"'}


def test_results_stream_into_output_and_errors():
    from lamina.ray.sink import OrderedSink

    out, err = io.StringIO(), io.StringIO()
    sink = OrderedSink(out, err)
    for row in [_row(1), _row(2, "error"), _row(10), _row(1, path="/e.jsonl")]:
        sink.add(row)
    sink.check(4)
    assert out.getvalue() == '"1"\n"10"\n"1"\n' and err.getvalue() == '"2"\n'
    assert (sink.written, sink.errors) == (3, 1)


@pytest.mark.parametrize("rows,n_in", [
    ([_row(1), _row(1)], 2),  # a batch delivered twice
    ([_row(2), _row(1)], 2),  # out of order
    ([_row(1), _row(1, path="/e"), _row(2)], 3),  # a file resumed after another
    ([_row(1)], 2),  # a record lost
])
def test_a_lost_or_duplicated_record_stops_the_run(rows, n_in):
    from lamina.ray.sink import OrderedSink, RecordCheckError

    sink = OrderedSink(io.StringIO(), io.StringIO())
    with pytest.raises(RecordCheckError, match="Record check failed"):
        for row in rows:
            sink.add(row)
        sink.check(n_in)


def test_nothing_is_published_when_the_check_fails(tmp_path):
    from lamina.ray.sink import RecordCheckError, open_sink

    out = tmp_path / "o.jsonl"
    with pytest.raises(RecordCheckError), open_sink(out, tmp_path / "o.errors.jsonl", False) as sink:
        sink.add(_row(1))
        sink.check(2)
    assert list(tmp_path.iterdir()) == []


def test_missing_model_and_input_fail_before_ray_starts(tmp_path, chat_gguf):
    import ray

    from lamina.errors import InputError, LaminaError
    from lamina.ray.runner import RayExtractOptions, run_extract

    src = tmp_path / "in.txt"
    src.write_text("康有为是广东人。\n", encoding="utf-8")
    with pytest.raises(InputError, match="model file .* does not exist"):
        run_extract(RayExtractOptions(model=tmp_path / "nope.gguf", input=str(src),
                                      output=tmp_path / "o.jsonl"))
    with pytest.raises(InputError, match="input .* does not exist"):
        run_extract(RayExtractOptions(model=chat_gguf, input=str(tmp_path / "none.jsonl"),
                                      output=tmp_path / "o.jsonl"))
    existing = tmp_path / "done.jsonl"
    existing.write_text("{}\n")
    with pytest.raises(LaminaError, match="already exists"):
        run_extract(RayExtractOptions(model=chat_gguf, input=str(src), output=existing))
    assert not ray.is_initialized()


def test_cli_rejects_resume_and_single_text(chat_gguf, tmp_path: Path):
    from lamina.errors import InputError
    from lamina.ie.job import ExtractOptions
    from lamina.ray.command import ray_options

    common = dict(model=chat_gguf, output=tmp_path / "o.jsonl", schema=["人物"], batch=1,
                  max_tokens=8, n_threads=1)
    with pytest.raises(InputError, match="--resume is not supported"):
        ray_options(ExtractOptions(input=tmp_path / "in.txt", resume=True, **common),
                    address="local", workers=2)
    with pytest.raises(InputError, match="needs --input"):
        ray_options(ExtractOptions(text="康有为是广东人。", **common), address="local", workers=2)


def test_an_address_where_nothing_listens_fails_fast(chat_gguf, tmp_path):
    import socket

    from lamina.errors import LaminaError
    from lamina.ray.runner import RayExtractOptions, run_extract

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = tmp_path / "in.txt"
    src.write_text("康有为是广东人。\n", encoding="utf-8")
    with pytest.raises(LaminaError, match="Nothing answers at the Ray address"):
        run_extract(RayExtractOptions(model=chat_gguf, input=str(src), output=tmp_path / "o.jsonl",
                                      address=f"127.0.0.1:{port}"))
    assert not (tmp_path / "o.jsonl").exists()


def test_a_node_without_the_model_is_named_in_the_error(tmp_path, monkeypatch):
    from lamina.errors import ModelLoadError
    from lamina.ray.worker import WorkerConfig, _model_path

    monkeypatch.chdir(tmp_path)
    config = WorkerConfig(model=str(tmp_path / "elsewhere" / "m.gguf"), model_as_given="m.gguf",
                          n_threads=1)
    with pytest.raises(ModelLoadError, match="not on the Ray node"):
        _model_path(config)
    (tmp_path / "m.gguf").write_bytes(b"GGUF")  # shipped with the job's working_dir
    assert _model_path(config) == "m.gguf"


@pytest.mark.parametrize("uri", ["s3://bucket/docs/a.jsonl", "local:///data/a.jsonl",
                                 "gs://b/k.txt", "/data/a.jsonl", "docs/a.txt"])
def test_input_uris_survive_the_path_option(uri):
    from lamina.ray.command import restore_uri

    assert restore_uri(str(Path(uri))) == uri


def test_stdout_gets_the_records_only_when_the_run_completes(capsys):
    from lamina.ray.sink import RecordCheckError, open_sink

    with open_sink(None, None, False) as sink:
        sink.add(_row(1))
        assert capsys.readouterr().out == ""
    assert capsys.readouterr().out == '"1"\n'
    with pytest.raises(RecordCheckError), open_sink(None, None, False) as sink:
        sink.add(_row(1))
        sink.check(2)
    assert capsys.readouterr().out == ""


def test_the_users_error_is_found_inside_rays_wrappers():
    from lamina.errors import FormatError
    from lamina.ray.runner import _user_error

    inner = FormatError("'m.gguf' is not a GGUF model file.")

    class TaskError(Exception):  # like ray.exceptions.RayTaskError: the original in .cause
        cause = inner

    wrapped = RuntimeError(TaskError("in the actor"))  # like ActorDiedError(RayTaskError)
    try:
        raise wrapped from ValueError("system")
    except RuntimeError as exc:
        assert _user_error(exc) is inner
    assert _user_error(RuntimeError("a bug")) is None
