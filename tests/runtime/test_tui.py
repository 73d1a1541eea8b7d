"""The chat UI's input handling and slash commands, driven without a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lamina.errors import LaminaError
from lamina.ui.tui import ChatApp, _parse_params, run_pipe


def make_app(model, lines: list[str]) -> tuple[ChatApp, io.StringIO]:
    feed = iter(lines)

    def read(prompt: str) -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    session = model.session()
    session.params = session.params.replace(temperature=0.0, max_tokens=6)
    return ChatApp(model, session, console=Console(file=out, width=100), read=read), out


def test_multi_line_input_block_and_backslash(model):
    app, _ = make_app(model, ['"""', "第一行", "第二行", '"""', "前半\\", "后半"])
    assert app.read_message() == "第一行\n第二行"
    assert app.read_message() == "前半\n后半"


def test_commands_drive_the_session(model, tmp_path):
    path = tmp_path / "c.json"
    app, out = make_app(model, ["你好", "/system 你是诗人", "/params temp=0.5 top_k=7",
                                f"/save {path}", "/undo", "/retry", f"/load {path}",
                                "/bogus", "/help", "/exit", "never read"])
    app.run()
    text = out.getvalue()
    s = app.session
    assert s.system == "你是诗人"
    assert (s.params.temperature, s.params.top_k) == (0.5, 7)
    assert "Removed: 你好" in text and "Nothing to undo" not in text
    assert "There is no message to retry yet." in text  # /retry after /undo: a message
    assert [m["content"] for m in s.messages if m["role"] == "user"] == ["你好"]
    assert "Unknown command /bogus" in text and "/params" in text
    assert "tok/s" in text and "context" in text


def test_what_people_type_is_shown_as_written(model, tmp_path):
    """Square brackets in messages, commands and paths are text, not Rich markup
    (a stray '[/x]' used to end the chat with a MarkupError)."""
    path = tmp_path / "c[b].json"
    app, out = make_app(model, ["[bold]你好[/b]", "/undo", "/[/x]", "/system [red]诗人",
                                "/system", f"/save {path}", f"/load {path}", "/load /no/[/x].json",
                                "/exit"])
    app.run()
    text = " ".join(out.getvalue().split())  # Rich wraps long lines
    assert "Removed: [bold]你好[/b]" in text
    assert "Unknown command /[/x]" in text
    assert "System prompt: [red]诗人" in text
    assert f"messages to {path}" in text and f"messages from {path}" in text
    assert "/no/[/x].json" in text and "Error:" in text


def test_bad_params_are_messages(model):
    with pytest.raises(LaminaError):
        _parse_params("temperature")
    with pytest.raises(LaminaError):
        _parse_params("top_k=many")
    assert _parse_params("stop=a,b seed=none max_tokens=9") == {
        "stop": ("a", "b"), "seed": None, "max_tokens": 9}


def test_pipe_mode_one_answer_per_line(model):
    session = model.session()
    session.params = session.params.replace(temperature=0.0, max_tokens=5)
    out = io.StringIO()
    assert run_pipe(session, io.StringIO("你好\n\n北京\n"), out) == 2
    assert out.getvalue().count("\n") == 2
    assert len(session.messages) == 4
