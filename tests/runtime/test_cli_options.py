"""Each option of `lamina chat` / `lamina generate` / `lamina templates` and the group's
`--debug` / `--version`, checked by its effect on what is printed.

The reference is llama.cpp run the plain way (tests/realmodels/reference.py: greedy
argmax over llama-cpp-python's logits, llama.cpp's repeat-penalty rule written out)
on prompts rendered here by hand from the published formats, so an option that is
dropped, or that reaches the prompt differently, changes the answer. The commands
run in-process (click's CliRunner): each run loads the tiny model in milliseconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamina.cli import cli
from tests.fixtures.prompts import alpaca2, chatml, flagalpha
from tests.realmodels.reference import Reference

REPO = Path(__file__).resolve().parents[2]
QUESTION = "介绍一下北京"
N = 16  # tokens per answer: enough to differ, few enough to stay fast
#: Sampler settings that leave only the penalty-free distribution at temperature 1.5.
OPEN = ["--temp", "1.5", "--top-k", "0", "--top-p", "1", "--min-p", "0",
        "--repeat-penalty", "1"]


@pytest.fixture(scope="module")
def ref(chat_gguf: Path) -> Reference:
    return Reference(chat_gguf, n_ctx=512, n_threads=1)


@pytest.fixture(scope="module")
def merged_ref(lora_merged_gguf: Path) -> Reference:
    return Reference(lora_merged_gguf, n_ctx=512, n_threads=1)


def answer(reference: Reference, prompt: str, n: int = N, repeat_penalty: float = 1.0) -> str:
    """The greedy answer to ``prompt`` as chat shows it: leading blanks dropped."""
    tokens = reference.greedy(reference.tokenize(prompt), n, repeat=repeat_penalty)
    return reference.detokenize(tokens).lstrip()


def run(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def ask(command: str, model: Path, question: str, *options: str) -> str:
    """One answer from `lamina chat` (piped stdin) or `lamina generate -p`."""
    base = ["-n", str(N), "--ctx", "512", "--threads", "1", *options]
    if command == "chat":
        out = run("chat", str(model), *base, stdin=question + "\n")
    else:
        out = run("generate", str(model), "-p", question, *base)
    assert out.endswith("\n") and out.count("\n") == 1, out
    return out[:-1]


GREEDY = ["--temp", "0", "--repeat-penalty", "1"]
COMMANDS = ["chat", "generate"]


# ---- what reaches the prompt: --system, --template, --whole, --lora

@pytest.mark.parametrize("command", COMMANDS)
def test_system_prompt_is_rendered_into_the_prompt(command, chat_gguf, ref):
    system = "你是一位只说上海话的导游。"
    got = ask(command, chat_gguf, QUESTION, "--system", system, *GREEDY)
    assert got == answer(ref, alpaca2(QUESTION, system))
    assert got != answer(ref, alpaca2(QUESTION))  # the system prompt made a difference


@pytest.mark.parametrize(("command", "name", "render"), [
    ("chat", "chatml", chatml), ("generate", "flagalpha", flagalpha)])
def test_template_option_renders_the_named_format(command, name, render, chat_gguf, ref):
    got = ask(command, chat_gguf, QUESTION, "--template", name, *GREEDY)
    assert got == answer(ref, render(QUESTION))
    assert got != answer(ref, alpaca2(QUESTION))  # not the file's own template


def test_chat_whole_sends_all_of_stdin_as_one_message(chat_gguf, ref):
    out = run("chat", str(chat_gguf), "--whole", "-n", str(N), "--ctx", "512", *GREEDY,
              stdin="你好\n" + QUESTION + "\n")
    assert out == answer(ref, alpaca2("你好\n" + QUESTION)) + "\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_lora_option_equals_the_merged_model(command, chat_gguf, good_lora, ref, merged_ref):
    got = ask(command, chat_gguf, QUESTION, "--lora", str(good_lora), *GREEDY)
    assert got == answer(merged_ref, alpaca2(QUESTION))
    assert got != answer(ref, alpaca2(QUESTION))


# ---- the sampler options

@pytest.mark.parametrize("command", COMMANDS)
def test_greedy_equals_the_reference_and_repeat_penalty_follows_llama_cpp(command, chat_gguf,
                                                                          ref):
    assert ask(command, chat_gguf, QUESTION, *GREEDY) == answer(ref, alpaca2(QUESTION))
    penalised = answer(ref, alpaca2(QUESTION), repeat_penalty=1.8)
    assert penalised != answer(ref, alpaca2(QUESTION))
    assert ask(command, chat_gguf, QUESTION, "--temp", "0", "--repeat-penalty", "1.8") \
        == penalised


@pytest.mark.parametrize("command", COMMANDS)
def test_seed_repeats_and_different_seeds_differ(command, chat_gguf, ref):
    runs = {seed: ask(command, chat_gguf, QUESTION, *OPEN, "--seed", str(seed))
            for seed in (1, 2, 3)}
    assert ask(command, chat_gguf, QUESTION, *OPEN, "--seed", "1") == runs[1]
    assert len(set(runs.values())) == 3
    assert answer(ref, alpaca2(QUESTION)) not in runs.values()  # sampled, not greedy


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("option", [["--top-k", "1"], ["--top-p", "0.000001"], ["--min-p", "1"]],
                         ids=["top-k", "top-p", "min-p"])
def test_a_filter_that_keeps_only_the_best_token_is_greedy(command, option, chat_gguf, ref):
    """At temperature 1.5 with seed 1 the answer is sampled (test above); top-k 1, a
    tiny top-p and min-p 1 each leave one candidate, the argmax."""
    opts = [*OPEN, "--seed", "1"]
    i = opts.index(option[0])
    opts[i + 1] = option[1]
    assert ask(command, chat_gguf, QUESTION, *opts) == answer(ref, alpaca2(QUESTION))


@pytest.mark.parametrize("command", COMMANDS)
def test_stop_string_cuts_where_greedy_would_go_on(command, chat_gguf, ref):
    full = answer(ref, alpaca2(QUESTION))
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert len(stop) == 2 and full.index(stop) > 0
    got = ask(command, chat_gguf, QUESTION, *GREEDY, "--stop", stop)
    cut = full[:full.index(stop)]
    assert got == (cut.strip() if command == "generate" else cut)  # generate strips answers


def test_generate_json_prints_the_record(chat_gguf, ref):
    out = run("generate", str(chat_gguf), "-p", QUESTION, "--json", "-n", str(N), *GREEDY)
    record = json.loads(out)
    tokens = ref.greedy(ref.tokenize(alpaca2(QUESTION)), N)
    assert record == {"id": "0", "prompt": QUESTION, "output": answer(ref, alpaca2(QUESTION)),
                      "completion_tokens": len(tokens),
                      "finish_reason": "length" if len(tokens) == N else "stop"}


# ---- templates, --debug, --version

def test_templates_name_jinja_shows_that_template_and_its_source():
    jinja2 = pytest.importorskip("jinja2")
    data = json.loads(run("templates", "chatml", "--json"))
    assert [t["name"] for t in data] == ["chatml"]
    source = data[0]["jinja"]
    # the source is the template: rendered by plain Jinja it gives the example shown
    messages = [{"role": "user", "content": "你好"},
                {"role": "assistant", "content": "你好！有什么可以帮你？"},
                {"role": "user", "content": "介绍一下北京"}]
    rendered = jinja2.Environment().from_string(source).render(
        messages=messages, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")
    assert rendered == data[0]["example"] == (
        "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！有什么可以帮你？<|im_end|>\n"
        "<|im_start|>user\n介绍一下北京<|im_end|>\n<|im_start|>assistant\n")
    table = run("templates", "chatml", "--jinja")
    squeeze = "".join(table.split())  # Rich wraps the one-line source
    assert "".join(source.split()) in squeeze
    assert "alpaca2" not in table and "flagalpha" not in table  # only the one asked for
    assert "".join(source.split()) not in "".join(run("templates", "chatml").split())


def test_debug_shows_the_traceback_a_plain_run_hides(capsys, tmp_path):
    from lamina.cli import main
    from lamina.errors import LaminaError

    missing = str(tmp_path / "none.gguf")
    with pytest.raises(SystemExit) as plain:
        main(["chat", missing])
    assert plain.value.code == 1
    err = capsys.readouterr().err
    assert "does not exist" in " ".join(err.split()) and "Traceback" not in err
    with pytest.raises(LaminaError, match="does not exist"):
        main(["--debug", "chat", missing])


def test_version_is_the_package_version():
    pyproject = (REPO / "pyproject.toml").read_text()  # tomllib is 3.11+
    version = re.search(r'^version = "([^"]+)"', pyproject, flags=re.M).group(1)
    assert run("--version") == f"lamina, version {version}\n"
