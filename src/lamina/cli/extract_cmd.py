"""``lamina extract``: IEPile/OneKE extraction over a text or a file of documents."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lamina.cli.options import (
    ctx_option,
    keep_failed_option,
    resume_option,
    template_option,
    threads_option,
)

if TYPE_CHECKING:  # pragma: no cover
    from lamina.ie.job import ExtractOptions


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("text", required=False)
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Documents: text (one a line), JSON Lines or a JSON array of records: "
                   "text/input (+id), IEPile train/test records, seed 000's "
                   "instruction/input/output pairs, raw annotations (text + "
                   "entity/relation/event, InstructIE).")
@click.option("--task", default=None,
              help="NER, RE, EE, EET, EEA or KG, for records that name none (default NER; "
                   "a record's own 'task' wins).")
@click.option("--schema", default=None,
              help='JSON list (or a JSON file) of what to extract, e.g. \'["人物","地理位置"]\'.')
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write JSONL records here (default: stdout).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the task instruction.")
@click.option("--split-num", type=int, default=None,
              help="Schema items per prompt (default per task: NER 6, RE/EE/EET/EEA 4, KG 1; -1 = no split).")
@resume_option
@keep_failed_option
@click.option("--force", "-f", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--no-grammar", is_flag=True,
              help="Free decoding; answers are parsed leniently and failures counted.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Documents decoded together on the native batched engine (default: as many "
                   "as fit a KV-cache budget of min(2 GiB, 1/4 of free memory), 2 to 64; 1 when "
                   "the engine is not built).")
@click.option("--fast-batch", is_flag=True,
              help="Decode a batch's documents in one kernel call: faster on K-quant (Q4_K_M...) "
                   "and F16 models, but an answer may then change in the last bits with --batch "
                   "and its batch companions (see docs/engine.md).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Answer length limit per prompt, in tokens.")
@click.option("--max-input-tokens", type=click.IntRange(min=1), default=None,
              help="Cut a document whose prompt is longer than this many tokens (seed 002's "
                   "cutoff_len; the record says it was cut). Default: what fits the context "
                   "after --max-tokens.")
@click.option("--max-items", type=click.IntRange(min=1), default=16, show_default=True,
              help="Grammar bound: entries per list.")
@click.option("--max-chars", type=click.IntRange(min=1), default=48, show_default=True,
              help="Grammar bound: characters per string.")
@click.option("--format", "style", type=click.Choice(["iepile", "pairs", "icl"]), default=None,
              help="Prompt/answer format: IEPile JSON, seed-000 '类别_实体&...' pairs, or icl "
                   "(seed 002's in-context-learning prompts for chat models; --task ner, re, "
                   "ee, rte or da). Default: pairs for records with seed 000's free-text "
                   "instruction, else iepile.")
@click.option("--examples", "examples", type=click.Path(path_type=Path), default=None,
              help="Few-shot demonstrations: IEPile records with their output (e.g. a train "
                   "file of `lamina ie convert`) or seed 000 pairs, shown as solved chat turns "
                   "before each prompt; with --format icl, seed 002's ICL example file.")
@click.option("--shots", type=click.IntRange(min=0), default=2, show_default=True,
              help="Demonstrations per prompt (with --examples).")
@click.option("--select", type=click.Choice(["overlap", "order"]), default="overlap",
              show_default=True, help="Which demonstrations: most schema types shared with "
              "the prompt first, or file order.")
@click.option("--domain", default=None, help="--format icl: the texts' domain.")
@click.option("--labels", default=None,
              help="--format icl: the label set, comma-separated (ner: entity types, re: "
                   "relations, ee: event types, rte: predicates, da: entity types).")
@click.option("--head", "head_entity", default=None,
              help="--format icl --task re: the head entity (records may say head_entity).")
@click.option("--head-type", "head_type", default=None, help="--format icl --task re: its type.")
@click.option("--tail", "tail_entity", default=None,
              help="--format icl --task re: the tail entity (records may say tail_entity).")
@click.option("--tail-type", "tail_type", default=None, help="--format icl --task re: its type.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              metavar="[ADDRESS]", help="Run on Ray (pip install \"lamina[ray]\"): a local "
              "instance, or the cluster at ADDRESS (auto, HOST:6379, ray://HOST:10001).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: worker actors, each loading the model once (--threads is per worker).")
@threads_option
@ctx_option
@template_option
def extract(model: Path, text: str | None, input_path: Path | None, task: str | None,
            schema: str | None,
            output: Path | None, lang: str, split_num: int | None, resume: bool,
            keep_failed: bool, force: bool, no_grammar: bool, batch: int | None,
            fast_batch: bool, max_tokens: int, max_input_tokens: int | None, max_items: int, max_chars: int,
            style: str | None, examples: Path | None, shots: int, select: str,
            domain: str | None, labels: str | None, head_entity: str | None,
            head_type: str | None, tail_entity: str | None, tail_type: str | None,
            ray_address: str | None, workers: int, n_threads: int | None,
            n_ctx: int | None, template: str | None) -> None:
    """Extract entities, relations, events or KG facts as JSON (IEPile/OneKE format)."""
    from lamina.ie.grammar import GrammarLimits
    from lamina.ie.job import ExtractOptions

    options = ExtractOptions(
        model=model, input=input_path, text=text, output=output, task=task, schema=schema,
        lang=lang, split_num=split_num, use_grammar=not no_grammar,
        limits=GrammarLimits(max_items, max_chars), style=style, max_tokens=max_tokens,
        max_input_tokens=max_input_tokens, batch=batch, exact=not fast_batch,
        n_threads=n_threads, n_ctx=n_ctx, template=template, resume=resume,
        keep_failed=keep_failed, force=force, examples=examples, shots=shots, select=select,
        domain=domain, labels=labels, head_entity=head_entity, head_type=head_type,
        tail_entity=tail_entity, tail_type=tail_type)
    if ray_address is not None:  # the same run on a Ray cluster (lamina.ray)
        return _run_ray(options, ray_address, workers)
    _run_local(options)


def _run_ray(options: ExtractOptions, address: str, workers: int) -> None:
    """``--ray [ADDRESS]``: the job on a Ray actor pool, then the records-in check."""
    from lamina.ray.command import ray_options
    from lamina.ray.runner import run_extract
    from lamina.ui.console import err_console, escape, items_progress

    with items_progress("docs") as bar:
        # Results arrive in blocks, minutes apart on a slow model: the rate must count
        # from the start (a first sample at t=0, never dropped), not over the last block.
        bar.speed_estimate_period = float("inf")
        task = bar.add_task(f"Extracting on Ray ({workers} workers)", total=None)
        report = run_extract(ray_options(
            options, address=address, workers=workers,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total)))
    for reason in report.skipped_reasons:
        err_console.print(f"[yellow]Skipped:[/] {escape(reason)}", highlight=False)
    pool = f"{report.workers} Ray worker{'s' if report.workers > 1 else ''}"
    per_worker = f"{report.threads} thread{'s' if report.threads > 1 else ''}"
    parts = [f"{report.records_out} docs in {report.seconds:.1f} s "
             f"({report.docs_per_second:.2f} docs/s on {pool} × {per_worker})"]
    if report.failed:
        parts.append(f"[red]{report.failed} failed[/] (see their 'error' field)")
    if report.errors and report.errors_path is not None:
        parts.append(f"[yellow]{report.errors} bad input lines[/] -> "
                     f"{escape(str(report.errors_path))}")
    dest = f"; wrote {escape(str(options.output))}" if options.output is not None else ""
    err_console.print(", ".join(parts) + dest, highlight=False)
    err_console.print(report.check, highlight=False, style="green")


def _run_local(options: ExtractOptions) -> None:
    """Run the job with a progress bar; records to stdout when there is no --output."""
    from lamina.ie.job import ExtractInterrupted, run_extract
    from lamina.ui.console import err_console, escape, items_progress

    def to_stdout(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    progress = items_progress("docs")
    task_id = progress.add_task("extracting", total=None)

    def on_progress(done: int, total: int) -> None:
        if not progress.live.is_started:  # the first call comes once the model is loaded
            progress.start()
        progress.update(task_id, completed=done, total=total)

    try:
        report = run_extract(options, on_progress=on_progress,
                             on_record=to_stdout if options.output is None else None)
    except ExtractInterrupted as stop:
        progress.stop()
        err_console.print(f"[yellow]Stopped after {stop.kept} records; run the same "
                          "command with --resume to continue.[/]")
        raise
    finally:
        progress.stop()
    if options.output is None:
        for line in report.bad_lines:
            err_console.print(f"[yellow]Skipped:[/] {escape(line.reason)}")
    parts = [f"{report.written} docs in {report.seconds:.1f} s "
             f"({report.docs_per_second:.2f} docs/s)"]
    if report.skipped:
        parts.append(f"{report.skipped} already done")
    if report.retried:
        parts.append(f"{report.retried} failed before, tried again")
    if report.failed:
        parts.append(f"[red]{report.failed} failed[/] (see their 'error' field)")
    if report.bad_lines:
        where = f" -> {escape(str(report.errors_path))}" if report.errors_path else ""
        parts.append(f"[yellow]{len(report.bad_lines)} bad input lines[/]{where}")
    dest = f"; wrote {escape(str(options.output))}" if options.output is not None else ""
    err_console.print(", ".join(parts) + dest, highlight=False)
    if report.cut:
        err_console.print(f"[yellow]{report.cut} answers hit --max-tokens; raise it, or lower "
                          "--max-items/--max-chars.[/]")
