"""``lamina extract``: IEPile/OneKE extraction over a text or a file of documents."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import (
    ctx_option,
    keep_failed_option,
    resume_option,
    template_option,
    threads_option,
)


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
              help="Decode a batch's documents in one kernel call: faster on K-quant models "
                   "(Q4_K_M...), but an answer may then change in the last bits with --batch "
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
    from lamina.errors import InputError
    from lamina.ie.api import Extractor
    from lamina.ie.grammar import GrammarLimits
    from lamina.ie.io import read_inputs

    if (text is None) == (input_path is None):
        raise InputError("Give either a TEXT argument or --input FILE (exactly one).",
                         hint="lamina extract MODEL.gguf --schema '[\"人物\"]' \"康有为是广东人。\"")
    if resume and output is None:
        raise InputError("--resume needs --output (the file of the run to continue).")
    if keep_failed and not resume:
        raise InputError("--keep-failed only applies with --resume.")
    limits = GrammarLimits(max_items, max_chars)
    # Validate task, schema and examples before the (slow) model load.
    icl, demos = _prepare_examples(style, task, examples, dict(
        domain=domain, labels=labels, head_entity=head_entity, head_type=head_type,
        tail_entity=tail_entity, tail_type=tail_type))
    if style != "icl":
        Extractor(_NoModel(), task=task or "NER", schema=schema, lang=lang, split_num=split_num,
                  use_grammar=not no_grammar, limits=limits, style=style or "iepile")
    extra = dict(examples=demos, shots=shots, select=select, icl=icl)
    if ray_address is not None:  # the same run on a Ray cluster (lamina.ray)
        from lamina.ie.inputs import is_json_array
        from lamina.ray.command import run_from_cli

        if input_path is not None and input_path.is_file() and is_json_array(input_path):
            raise InputError("--ray reads its input line by line; this file is one JSON array.",
                             hint="Run without --ray, or write it as JSON Lines first.")

        return run_from_cli(
            model=model, input_path=input_path, text=text, output=output, address=ray_address,
            workers=workers, resume=resume, force=force, options=dict(
                task=task, schema=schema, lang=lang, split_num=split_num,
                use_grammar=not no_grammar, limits=limits, style=style,
                max_input_tokens=max_input_tokens, exact=not fast_batch, **extra),
            batch=batch, max_tokens=max_tokens, n_threads=n_threads, n_ctx=n_ctx,
            template=template, keep_failed=keep_failed)
    items: list[Any] = (list(read_inputs(input_path, task=task)) if input_path
                        else [{"id": "1", "text": text}])
    if not items:
        raise InputError(f"The input file '{input_path}' holds no documents.",
                         hint="Put one document per line, or JSONL records with a 'text' field.")
    if schema is None and style != "icl" and \
            not any(isinstance(i, dict) and "instruction" in i for i in items):
        raise InputError("No --schema given: say what to extract.",
                         hint='For example --schema \'["人物","地理位置","组织机构"]\'.')
    _run(model, items, output, resume, keep_failed, force, dict(
        task=task, schema=schema, lang=lang, split_num=split_num, use_grammar=not no_grammar,
        limits=limits, style=style, max_input_tokens=max_input_tokens, exact=not fast_batch,
        **extra),
        batch, max_tokens,
        n_threads, n_ctx, template)


class _NoModel:
    template = None


def _prepare_examples(style: str | None, task: str | None, examples: Path | None,
                      icl_values: dict[str, Any]) -> tuple[Any, Any]:
    """(ICL params, demonstrations) read and checked before the model loads."""
    from lamina.ie.fewshot import load_demos
    from lamina.ie.icl import get_icl_task, icl_params, load_examples

    if style == "icl":
        if task is None:
            raise click.UsageError("--format icl needs --task (ner, re, ee, rte or da).")
        get_icl_task(task)
        return icl_params(**icl_values), load_examples(examples, task) if examples else ()
    names = {"domain": "--domain", "labels": "--labels", "head_entity": "--head",
             "head_type": "--head-type", "tail_entity": "--tail", "tail_type": "--tail-type"}
    given = [names[k] for k, v in icl_values.items() if v is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} only apply with --format icl.")
    return None, load_demos(examples) if examples else ()


def _run(model_path: Path, items: list[Any], output: Path | None, resume: bool,
         keep_failed: bool, force: bool, opts: dict[str, Any], batch: int | None,
         max_tokens: int, n_threads: int | None, n_ctx: int | None,
         template: str | None) -> None:
    import lamina
    from lamina.ie.api import extract_iter, extract_many
    from lamina.ie.io import BadLine, DoneIndex, ResumableJsonl, errors_path
    from lamina.runtime.sampling import SamplingParams
    from lamina.ui.console import err_console, escape, items_progress

    out = err = None
    done = DoneIndex([])
    bad_done: set[int] = set()
    retried = 0
    if output is not None:
        out = ResumableJsonl(output)
        err = ResumableJsonl(errors_path(output))
        out.start(resume=resume, force=force or resume)
        err.start(resume=resume, force=True)
        if not keep_failed:
            retried = out.drop_existing(lambda r: "error" in r)
        done = DoneIndex(out.existing)
        bad_done = {int(r.get("line", -1)) for r in err.existing}
    todo, todo_pos, skipped_pos, bad = [], [], {}, 0
    for pos, item in enumerate(items):
        if isinstance(item, BadLine):
            bad += 1
            if err is not None and item.line not in bad_done:
                err.write(item.as_record())
            elif err is None:
                err_console.print(f"[yellow]Skipped:[/] {escape(item.reason)}")
        elif done.skip(str(item["id"])):
            skipped_pos.setdefault(str(item["id"]), []).append(pos)
        else:
            todo.append(item)
            todo_pos.append(pos)
    # Sort keys of the records in the output, in the order they are written:
    # the published file is in input order although records are written as
    # documents finish.
    order: list[int] = []
    for rec in out.existing if out is not None else []:
        positions = skipped_pos.get(str(rec.get("id")))
        order.append(positions.pop(0) if positions else len(items))
    skipped = len(items) - bad - len(todo)
    failed = written = cut = 0
    start = time.perf_counter()
    try:
        llm = lamina.load(model_path, n_threads=n_threads, n_ctx=n_ctx, template=template)
        params = SamplingParams.greedy(max_tokens=max_tokens)
        if batch is None:
            from lamina.runtime.engine import default_n_seq, native_available

            batch = default_n_seq(llm) if native_available() else 1
        with items_progress("docs") as progress:
            task_id = progress.add_task("extracting", total=len(todo))
            if out is not None:
                records = extract_iter(llm, todo, batch=batch, params=params, **opts)
            else:  # stdout cannot be reordered afterwards: input order as we go
                records = enumerate(extract_many(llm, todo, batch=batch, params=params, **opts))
            for index, rec in records:
                failed += int("error" in rec)
                cut += int(rec.get("finish_reason") == "length")
                written += 1
                if out is not None:
                    out.write(rec)
                    order.append(todo_pos[index])
                else:
                    sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
                progress.advance(task_id)
    except BaseException:
        if out is not None and err is not None:
            out.close()
            err.close()
            if out.count:
                err_console.print(f"[yellow]Stopped after {out.count} records; run the same "
                                  "command with --resume to continue.[/]")
        raise
    if out is not None and err is not None:
        out.finish(order=order)
        err.finish(keep_empty=False)
    seconds = time.perf_counter() - start
    rate = written / seconds if seconds > 0 else 0.0
    parts = [f"{written} docs in {seconds:.1f} s ({rate:.2f} docs/s)"]
    if skipped:
        parts.append(f"{skipped} already done")
    if retried:
        parts.append(f"{retried} failed before, tried again")
    if failed:
        parts.append(f"[red]{failed} failed[/] (see their 'error' field)")
    if bad:
        where = f" -> {escape(str(errors_path(output)))}" if output is not None else ""
        parts.append(f"[yellow]{bad} bad input lines[/]{where}")
    dest = f"; wrote {escape(str(output))}" if output is not None else ""
    err_console.print(", ".join(parts) + dest, highlight=False)
    if cut:
        err_console.print(f"[yellow]{cut} answers hit --max-tokens; raise it, or lower "
                          "--max-items/--max-chars.[/]")
