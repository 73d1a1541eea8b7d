"""The commands as people use them: `lamina chat` in a real pseudo-terminal and in a pipe,
`lamina generate`, `lamina templates`, bad input, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import lamina
from lamina.runtime.sampling import SamplingParams

ENV = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "NO_COLOR": "1"}


def lamina_cmd(*args: str, stdin: str | None = None, timeout: int = 60,
               env: dict | None = None) -> subprocess.CompletedProcess:
    if args and args[0] in ("chat", "generate") and "--threads" not in args:
        args = (*args, "--threads", "1")  # tiny model: one thread is fastest on a busy machine
    return subprocess.run([sys.executable, "-m", "lamina", *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=env or ENV)


def flat(text: str) -> str:
    """Error text with Rich's line wrapping undone."""
    return " ".join(text.split())


def test_chat_in_a_terminal_like_a_person(chat_gguf, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    # a question whose greedy answer is long (random tiny models rarely emit EOS), so that
    # Ctrl-C surely lands in the middle of it
    with lamina.load(chat_gguf, n_ctx=4096, n_threads=1) as m:
        for long_question in ("介绍一下北京", "北京", "上海是哪里", "你好", "写一首诗"):
            m.chat([{"role": "user", "content": long_question}], temperature=0.0,
                   max_tokens=3500)
            if m.last_stats.finish_reason == "length":
                break
        else:
            pytest.skip("no question with a long answer on this fixture model")
    env = {**ENV, "LAMINA_HISTORY": str(tmp_path / "history")}
    child = pexpect.spawn(sys.executable, ["-m", "lamina", "chat", str(chat_gguf), "--temp", "0",
                                           "-n", "24", "--ctx", "4096", "--threads", "1"],
                          encoding="utf-8", codec_errors="replace", timeout=60, dimensions=(40, 100), env=env)
    child.logfile_read = open(tmp_path / "terminal.log", "w")  # noqa: SIM115
    try:
        child.expect("lamina chat")
        child.expect_exact(">>> ")
        # a question: the streamed answer and the status line
        child.sendline("你好")
        child.expect(r"(\d+) tokens · [\d.]+ tok/s")
        assert int(child.match.group(1)) > 0
        child.expect("context \\d+/4096")
        child.expect_exact(">>> ")
        child.sendline("介绍一下北京")
        child.expect("tok/s")
        child.expect(r"(\d+) new \+ (\d+) cached")
        assert int(child.match.group(2)) > int(child.match.group(1))  # KV reused
        child.expect_exact(">>> ")
        # /undo removes the last exchange
        child.sendline("/undo")
        child.expect(r"Removed:(\x1b\[0m)? 介绍一下北京")
        child.expect_exact(">>> ")
        # /save then /reset then /load brings the conversation back
        saved = tmp_path / "chat.json"
        child.sendline(f"/save {saved}")
        child.expect(r"Saved(\x1b\[0m)? 2 messages")
        child.expect_exact(">>> ")
        child.sendline("/reset")
        child.expect_exact("New conversation.")
        child.expect_exact(">>> ")
        child.sendline(f"/load {saved}")
        child.expect(r"Loaded(\x1b\[0m)? 2 messages")
        child.expect(r"user:(\x1b\[0m)? 你好")
        child.expect_exact(">>> ")
        assert json.loads(saved.read_text())["messages"][0]["content"] == "你好"
        # Ctrl-C in the middle of a long answer stops it and the chat goes on
        child.sendline("/reset")
        child.expect_exact(">>> ")
        child.sendline("/params max_tokens=3500")
        child.expect_exact(">>> ")
        child.sendline(long_question)
        child.expect_exact(long_question)
        child.expect_exact("\x1b[?25l")  # the live answer view started
        time.sleep(0.2)
        child.sendintr()
        child.expect_exact("(answer stopped)")
        child.expect(r"(\d+) tokens ·")
        assert int(child.match.group(1)) < 3500
        child.expect_exact(">>> ")
        child.sendline("/params max_tokens=8")
        child.expect_exact(">>> ")
        child.sendline("继续")
        child.expect(r"(\d+) tokens · [\d.]+ tok/s")
        assert int(child.match.group(1)) > 0
        child.expect_exact(">>> ")
        # a bad command and a bad file are messages, not crashes
        child.sendline("/load /nonexistent/chat.json")
        child.expect_exact("does not exist")
        child.expect_exact(">>> ")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")


def test_chat_reads_stdin_line_by_line_when_piped(chat_gguf):
    res = lamina_cmd("chat", str(chat_gguf), "--temp", "0", "-n", "12", "--ctx", "512",
                     stdin="你好\n\n介绍一下北京\n")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # llama.cpp's log stays quiet
    answers = res.stdout.split("\n")
    assert len([a for a in answers if a]) >= 1 and len(answers) == 3  # two answers, newline each
    with lamina.load(chat_gguf, n_ctx=512, n_threads=1) as m:
        s = m.session()
        s.params = s.params.replace(temperature=0.0, max_tokens=12)
        assert answers[0] == s.send("你好", stream=False).lstrip()
        assert answers[1] == s.send("介绍一下北京", stream=False).lstrip()


def test_chat_pipe_does_not_import_torch(chat_gguf):
    code = ("import sys; from lamina.cli import main\n"
            "try:\n    main(['chat', sys.argv[1], '-n', '4', '--ctx', '128'])\n"
            "except SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code, str(chat_gguf)], input="你好\n",
                         text=True, capture_output=True, timeout=60, env=ENV)
    assert "NO-TORCH" in res.stderr, res.stderr


def test_import_lamina_is_fast_and_light():
    code = ("import time, sys; t = time.perf_counter(); import lamina; "
            "dt = time.perf_counter() - t; print(dt, 'torch' in sys.modules, "
            "'llama_cpp' in sys.modules)")
    best = min(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=ENV).stdout.split()[0]) for _ in range(3))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ENV).stdout.split()
    assert out[1:] == ["False", "False"]
    assert best < 0.3


@pytest.mark.parametrize("args, message", [
    (["chat", "/no/such/model.gguf"], "does not exist"),
    (["chat", "/no/such/model[/v2].gguf"], "'/no/such/model[/v2].gguf' does not exist"),
    (["chat", "{readme}"], "is not a GGUF"),
    (["chat", "{model}", "--template", "llama2-zh"], "is now called 'flagalpha'"),
    (["chat", "{model}", "--lora", "{foreign}"], "does not fit the model"),
    (["generate", "{model}", "-p", "x", "--temp", "-1"], "temperature"),
    (["generate", "{model}", "-p", "x", "--presence-penalty", "3"], "presence_penalty=3.0"),
    (["chat", "{model}", "--frequency-penalty", "-2.5"], "frequency_penalty=-2.5"),
    (["generate", "{model}", "--input", "/no/such/prompts.txt"], "does not exist"),
])
def test_bad_input_is_one_clear_message(args, message, chat_gguf, foreign_lora, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# not a model\n")
    subs = {"{model}": str(chat_gguf), "{readme}": str(readme), "{foreign}": str(foreign_lora)}
    res = lamina_cmd(*[subs.get(a, a) for a in args], stdin="")
    assert res.returncode == 1
    assert "Error:" in res.stderr and message in flat(res.stderr)
    assert "Traceback" not in res.stderr


def test_error_hints_keep_their_brackets():
    from rich.console import Console

    from lamina.ui.console import print_error

    out = Console(record=True, width=200)
    print_error("This command needs the Python package 'fastapi'.",
                'Install it with: pip install "lamina[serve]"', to=out)
    assert 'pip install "lamina[serve]"' in out.export_text()


def test_generate_data_file_to_predictions_jsonl(chat_gguf, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join([
        json.dumps({"id": "a", "instruction": "介绍一下北京"}, ensure_ascii=False),
        json.dumps({"instruction": "翻译", "input": "hello"}, ensure_ascii=False),
        "一行纯文本的问题",
        "",
    ]), "utf-8")
    out = tmp_path / "pred.jsonl"
    res = lamina_cmd("generate", str(chat_gguf), "--input", str(prompts), "-o", str(out),
                     "--temp", "0", "-n", "8", "--ctx", "256")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "2", "3"]  # own id, else the line number
    assert [r["prompt"] for r in rows] == ["介绍一下北京", "翻译\nhello", "一行纯文本的问题"]
    with lamina.load(chat_gguf, n_ctx=256, n_threads=1) as m:
        expected = m.chat([{"role": "user", "content": "介绍一下北京"}], temperature=0.0,
                          max_tokens=8)
    assert rows[0]["output"] == expected.strip()
    assert all(r["completion_tokens"] <= 8 for r in rows)
    # refuses to overwrite without --force, and the file is untouched
    before = out.read_text("utf-8")
    res = lamina_cmd("generate", str(chat_gguf), "-p", "x", "-o", str(out))
    assert res.returncode == 1 and "already exists" in flat(res.stderr)
    assert out.read_text("utf-8") == before


def test_generate_bad_records_go_to_the_errors_file(chat_gguf, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{"instruction": broken}\n{"id": 3}\n')
    res = lamina_cmd("generate", str(chat_gguf), "--input", str(bad), "-n", "4")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "line 2 is not valid JSON" in flat(res.stderr) and "line 3 has no 'prompt'" in \
        flat(res.stderr)
    assert [json.loads(x)["id"] for x in res.stdout.splitlines()] == ["1"]
    out = tmp_path / "pred.jsonl"
    res = lamina_cmd("generate", str(chat_gguf), "--input", str(bad), "-n", "4", "-o", str(out))
    assert res.returncode == 0 and "2 bad input records" in flat(res.stderr)
    errors = [json.loads(x) for x in (tmp_path / "pred.errors.jsonl").read_text().splitlines()]
    assert [e["line"] for e in errors] == [2, 3]
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["1"]
    assert not list(tmp_path.glob("*.part"))


def test_generate_single_prompt_prints_text(chat_gguf):
    res = lamina_cmd("generate", str(chat_gguf), "-p", "北京", "--no-template", "--temp", "0",
                     "-n", "6", "--ctx", "128")
    assert res.returncode == 0, res.stderr
    with lamina.load(chat_gguf, n_ctx=128, n_threads=1) as m:
        assert res.stdout == m.generate("北京", SamplingParams.greedy(6)).strip() + "\n"


def test_presence_and_frequency_penalty_options_reach_the_sampler(chat_gguf):
    pen = ["--presence-penalty", "1.5", "--frequency-penalty", "0.5"]
    common = ["--temp", "0", "-n", "24", "--ctx", "128", "--repeat-penalty", "1"]
    gen = lamina_cmd("generate", str(chat_gguf), "-p", "北京", "--no-template", *common, *pen)
    chat = lamina_cmd("chat", str(chat_gguf), *common, *pen, stdin="北京\n")
    assert gen.returncode == 0 and chat.returncode == 0, gen.stderr + chat.stderr
    p = SamplingParams.greedy(24).replace(presence_penalty=1.5, frequency_penalty=0.5)
    with lamina.load(chat_gguf, n_ctx=128, n_threads=1) as m:
        assert gen.stdout == m.generate("北京", p).strip() + "\n"
        assert gen.stdout != m.generate("北京", SamplingParams.greedy(24)).strip() + "\n"
        s = m.session()
        s.params = s.params.replace(temperature=0.0, max_tokens=24, repeat_penalty=1.0,
                                    presence_penalty=1.5, frequency_penalty=0.5)
        assert chat.stdout == s.send("北京", stream=False).strip() + "\n"


def test_templates_command_lists_all_with_examples():
    res = lamina_cmd("templates", "--json")
    assert res.returncode == 0
    data = json.loads(res.stdout)
    assert [t["name"] for t in data] == [
        "alpaca", "alpaca2", "llama2", "llama2_zh", "flagalpha", "llama3", "qwen", "vicuna",
        "baichuan", "baichuan2", "chatglm3", "chatml", "raw"]
    zh = next(t for t in data if t["name"] == "flagalpha")
    assert zh["example"].startswith("<s>Human: 你好\n</s><s>Assistant: ")
    table = lamina_cmd("templates")
    assert table.returncode == 0 and "alpaca2" in table.stdout and "[INST]" in table.stdout


def test_templates_command_is_readable_in_80_columns():
    """Each example keeps whole lines (not a column squeezed to a few characters)."""
    res = lamina_cmd("templates", env={**ENV, "COLUMNS": "80"})
    assert res.returncode == 0
    lines = [line.rstrip() for line in res.stdout.splitlines()]
    assert max(len(line) for line in lines) <= 80
    assert "  <|im_start|>system" in lines  # qwen's example, first line whole
    assert "  <s>Human: 你好" in lines  # flagalpha's


def test_chat_start_up_is_quick(chat_gguf):
    start = time.perf_counter()
    res = lamina_cmd("chat", str(chat_gguf), "-n", "1", "--ctx", "128", stdin="你好\n")
    assert res.returncode == 0, res.stderr
    assert time.perf_counter() - start < 10


