"""``lamina demo``: the whole product on this machine in about a minute.

Builds a tiny Chinese-LLaMA-like base and two LoRA patches (a Plus-like one that
extends the vocabulary, then an Alpaca-like one trained on a few answers), runs
the real ``lamina build`` to a Q4_K_M GGUF with its size and quality tables,
then one streamed chat turn and one NER extraction on the 4-bit file. Nothing
is downloaded. The GGUF stays in the work folder for the commands it suggests.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from lamina.cli.options import threads_option

DEMO_MODEL_NAME = "demo-q4_k_m.gguf"
DEMO_QUESTION = "请介绍一下西湖。"


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("lamina-demo"), show_default=True,
              help="Folder for the demo model (created if missing).")
@click.option("--keep", is_flag=True,
              help="Also keep the HF base and LoRA folders (by default only the GGUF stays).")
@threads_option
@click.pass_context
def demo(ctx: click.Context, workdir: Path, keep: bool, n_threads: int | None) -> None:
    """Build, quantize, verify, chat and extract with a tiny model made on the spot."""
    from lamina.errors import InputError, require

    require("torch", "convert")
    require("peft", "convert")
    from rich.panel import Panel
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from lamina.cli.quantize_cmd import build as build_command
    from lamina.demo.training import DEMO_NER_DOCS, DEMO_NER_SCHEMA, build_demo_family
    from lamina.ui.console import console, err_console, escape

    _quiet_training_libraries()
    started = time.perf_counter()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the demo folder '{workdir}': {exc.strerror}.",
                         hint="Choose a writable place with --workdir.") from exc
    sources = workdir / "checkpoints"
    if sources.exists():
        shutil.rmtree(sources)
    console.rule("[bold]1. Make a base model and two LoRA patches")
    steps = 30
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        task = progress.add_task("Training the Alpaca-like LoRA", total=steps, loss="-")
        family = build_demo_family(
            sources, steps=steps,
            on_step=lambda step, loss: progress.update(task, completed=step, loss=f"{loss:.4f}"))
    console.print(f"base  [cyan]{escape(str(family.base))}[/]\n"
                  f"LoRA 1 [cyan]{escape(str(family.lora_plus))}[/] (extends the vocabulary)\n"
                  f"LoRA 2 [cyan]{escape(str(family.lora_alpaca))}[/] "
                  "(instruction-tuned on a few answers)")

    console.rule("[bold]2. lamina build: merge + convert + quantize to Q4_K_M + verify")
    model_path = workdir / DEMO_MODEL_NAME
    ctx.invoke(build_command, base=family.base, loras=(family.lora_plus, family.lora_alpaca),
               diff=None, tokenizer=None, qtype="Q4_K_M", output=model_path, template="alpaca2",
               intermediate="f16", n_threads=n_threads, imatrix=None, keep_output_f16=False,
               no_verify=False, tmp_dir=None, force=True, as_json=False)

    import lamina

    console.rule("[bold]3. Chat with the 4-bit model (streamed)")
    model = lamina.load(model_path, n_ctx=1024, n_threads=n_threads)
    console.print(f"[bold green]You:[/] {DEMO_QUESTION}")
    console.print("[bold blue]lamina:[/] ", end="")
    for piece in model.chat([{"role": "user", "content": DEMO_QUESTION}],
                            stream=True, temperature=0.0, max_tokens=64):
        console.print(piece, end="", highlight=False, markup=False)
    console.print()

    console.rule("[bold]4. Information extraction (NER, OneKE format, grammar-constrained)")
    text = DEMO_NER_DOCS[0][0]
    result = model.extract(text, task="NER", schema=DEMO_NER_SCHEMA, lang="zh")
    console.print(f"[bold]input:[/] {text}\n[bold]schema:[/] "
                  f"{json.dumps(DEMO_NER_SCHEMA, ensure_ascii=False)}")
    console.print_json(json.dumps(result, ensure_ascii=False))

    _write_samples(workdir, DEMO_NER_DOCS)
    if not keep:
        shutil.rmtree(sources, ignore_errors=True)
    elapsed = time.perf_counter() - started
    console.print(Panel.fit(
        f"Demo finished in {elapsed:.0f} s. Your model: [cyan]{model_path}[/]\n\n"
        "Next:\n"
        f"  lamina chat {model_path}\n"
        f"  lamina extract {model_path} --task NER --schema "
        f"'{json.dumps(DEMO_NER_SCHEMA, ensure_ascii=False)}' \"{text}\"\n"
        f"  lamina extract {model_path} --task NER --schema "
        f"'{json.dumps(DEMO_NER_SCHEMA, ensure_ascii=False)}' -i {workdir / 'ner_docs.jsonl'} "
        f"-o {workdir / 'ner_out.jsonl'}\n"
        f"  lamina eval --pred {workdir / 'ner_out.jsonl'} --gold {workdir / 'ner_gold.jsonl'} "
        "--task NER\n"
        f"  lamina serve {model_path}\n"
        f"  lamina info {model_path}",
        title="lamina demo", border_style="green"))


def _quiet_training_libraries() -> None:
    """transformers/peft print their own progress bars and deprecation notices;
    the demo shows its own progress instead."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _write_samples(workdir: Path, docs: list[tuple[str, dict[str, list[str]]]]) -> None:
    """Sample extraction input and gold answers, for the README's extract/eval examples."""
    with open(workdir / "ner_docs.jsonl", "w", encoding="utf-8") as fh:
        for i, (text, _) in enumerate(docs, 1):
            fh.write(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False) + "\n")
    with open(workdir / "ner_gold.jsonl", "w", encoding="utf-8") as fh:
        for i, (_, gold) in enumerate(docs, 1):
            fh.write(json.dumps({"id": f"d{i}", "output": json.dumps(gold, ensure_ascii=False)},
                                ensure_ascii=False) + "\n")
