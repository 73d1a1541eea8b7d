"""What cog writes into the docs: the CLI reference and the benchmark numbers.

The docs pages hold cog blocks (``<!-- [[[cog ... ]]] -->`` ... ``<!-- [[[end]]] -->``)
that call the functions below. Regenerate everything with

    cog -r docs/*.md README.md

from the repository root, in a venv where lamina is installed (the CLI help is
read from the installed click group). ``.ci/run`` runs ``cog --check`` on the
same files, so a changed option or benchmark JSON without regenerated docs fails CI.
cog puts the folder of the file it processes on sys.path, so docs pages
``import _gen``; README.md (in the root) imports ``docs._gen``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: width the help text is wrapped at (click otherwise uses the terminal's)
HELP_WIDTH = 100

#: docs page that explains each command (commands not listed get no link)
PAGES = {
    "convert": "convert.md", "merge": "convert.md", "checksum": "convert.md",
    "quantize": "quantize.md", "build": "quantize.md", "verify": "quantize.md",
    "info": "quantize.md",
    "chat": "chat.md", "generate": "chat.md", "templates": "chat.md",
    "extract": "extract.md", "eval": "eval.md", "ie": "extract.md", "serve": "serve.md", "ui": "web.md",
    "demo": "../README.md",
}


def _tables():
    spec = importlib.util.spec_from_file_location("_lamina_bench_tables",
                                                  ROOT / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_t = _tables()
#: the benchmark tables: section(name), cell(name, row, column), extra(name, *keys)
section, cell, extra, load = _t.section, _t.cell, _t.extra, _t.load


def _help(args: list[str]) -> str:
    from click.testing import CliRunner

    from lamina.cli import cli

    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="lamina",
                                terminal_width=HELP_WIDTH, catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"lamina {' '.join(args)} --help exited {result.exit_code}")
    return result.output.rstrip() + "\n"


def cli_reference() -> str:
    """Every command's ``--help``, in the order of ``lamina --help``."""
    import click

    from lamina.cli import cli

    ctx = click.Context(cli, info_name="lamina")
    names = cli.list_commands(ctx)
    out = ["Commands: " + ", ".join(f"[`{n}`](#lamina-{n})" for n in names) + ".", ""]
    out += ["## `lamina`", "", "```text", "$ lamina --help", _help([]) + "```", ""]
    for name in names:
        out += [f"## `lamina {name}`", ""]
        if name in PAGES:
            out += [f"Explained in [{PAGES[name].removeprefix('../')}]({PAGES[name]}).", ""]
        out += ["```text", f"$ lamina {name} --help", _help([name]) + "```", ""]
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):  # a group's subcommands, each with its help
            for sub in command.list_commands(ctx):
                out += [f"### `lamina {name} {sub}`", "", "```text",
                        f"$ lamina {name} {sub} --help", _help([name, sub]) + "```", ""]
    return "\n".join(out)


def summary() -> str:
    """The README's one-table digest of the benchmarks, every number from the JSON."""
    lc = "lamina convert --lora"
    lb = "lamina build"
    rows = [
        ("convert + merge a LoRA", "convert.md#speed-one-streamed-pass-vs-the-seed-projects-two-steps",
         f"{cell('convert', lc, 'speed vs seed path')}, peak RAM "
         f"{cell('convert', lc, 'RSS / model size')} of the model size "
         f"(seed: {cell('convert', 'seed path total', 'RSS / model size')})",
         "peft merge_and_unload, then convert_hf_to_gguf.py"),
        ("build a Q4_K_M file", "quantize.md#speed-lamina-build-vs-the-seed-path",
         cell("quantize", lb, "vs seed path"),
         "convert_hf_to_gguf.py, then llama_model_quantize"),
        ("decode", "chat.md#speed",
         f"{cell('decode', 'decode (tokens/s)', 'lamina / plain')} the tokens/s",
         "a plain llama-cpp-python loop"),
        ("extract with the grammar", "extract.md#speed",
         f"{cell('extract', 'lamina extract (grammar)', 'valid JSON, schema keys in order')} "
         f"valid JSON, {cell('extract', 'lamina extract (grammar)', 'speed vs plain')} the speed "
         f"(plain: {cell('extract', 'llama-cpp-python', 'valid JSON, schema keys in order')})",
         "llama-cpp-python create_chat_completion"),
        ("extract on the batched engine", "engine.md#speed",
         f"{cell('engine', 'lamina engine', 'vs plain')} the docs/s, answers "
         f"{cell('engine', 'lamina engine', 'results')} to one-at-a-time lamina",
         "llama-cpp-python per document, same grammar"),
        ("serve", "serve.md#speed",
         f"{cell('serve', ('1 client', 'lamina serve'), 'tokens/s vs llama-server')} the tokens/s "
         "with 1 client, "
         f"{cell('serve', (_shared_scenario(), 'lamina serve'), 'tokens/s vs llama-server')} "
         "with 8 clients sharing a system prompt",
         "llama-server, same slots and threads"),
    ]
    out = ["| what | lamina | against | details |", "|---|---|---|---|"]
    for what, link, measured, baseline in rows:
        out.append(f"| {what} | {measured} | {baseline} | [docs/{link.split('#')[0]}](docs/{link}) |")
    return "\n".join(out) + "\n"


def _shared_scenario() -> str:
    return f"{extra('serve', 'parallel')} clients, stream, shared system prompt"


def mutation_scores() -> str:
    """Before/after mutation scores per module (benchmarks/mutation.py results)."""
    before, after = load("mutation_before"), load("mutation")
    b_rows = {r[0]: r for r in before["rows"]}
    cols = after["columns"]
    out = ["| module | mutants | killed | survived | not run by the tests | equivalent "
           "| score | score before the new tests |", "|---|---|---|---|---|---|---|---|"]
    for row in after["rows"]:
        r = dict(zip(cols, row, strict=True))
        old = dict(zip(before["columns"], b_rows[row[0]], strict=True)) if row[0] in b_rows else {}
        out.append(f"| `{r['module']}` | {r['mutants']} | {r['killed']} | {r['survived']} "
                   f"| {r['not run by the tests']} | {r['equivalent']} | **{r['score']}** "
                   f"| {old.get('score', '-')} ({old.get('mutants', '-')} mutants) |")
    minutes = sum(m["seconds"] for m in after["extra"]["modules"].values()) / 60
    out += ["", f"Full run of {after['date']} (`python benchmarks/mutation.py`): "
            f"{minutes:.0f} minutes on the 2 shared cores; before: {before['date']}."]
    return "\n".join(out) + "\n"


def mutation_survivors() -> str:
    """The mutants the full run left alive, each with the reason it was left."""
    data = load("mutation")["extra"]["modules"]
    out = []
    for mod in data.values():
        left = mod["survived"] + mod["not_run"]
        eq = mod["equivalent"]
        out.append(f"- `{mod['source']}`: {len(left)} surviving, {len(eq)} equivalent")
        for line in left:
            why = mod.get("accepted", {}).get(line.split(" ", 1)[1], "")
            out.append(f"  - `{line}`" + (f": {why}" if why else ""))
        for mid, why in eq.items():
            out.append(f"  - equivalent: `{mid}`: {why}")
    return "\n".join(out) + "\n"
