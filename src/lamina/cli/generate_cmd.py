"""``lamina generate``: prompts in, predictions out (seed 003's data-file inference).

Input: ``--prompt TEXT`` (repeatable) or ``--input FILE`` with one prompt per
line, or JSONL whose records carry ``instruction`` (+ optional ``input``) or
``prompt``. Each prompt is one user message in the chat template unless
``--no-template``. Output: JSONL records to ``--output`` (written atomically)
or to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import (
    ctx_option,
    force_option,
    gpu_layers_option,
    json_option,
    lora_option,
    sampling_options,
    sampling_overrides,
    template_option,
    threads_option,
)
from lamina.errors import FormatError, InputError


def read_prompts(path: Path) -> list[dict[str, Any]]:
    """Records from a prompt file: ``{"id", "prompt"}`` each, in file order."""
    from lamina.files import require_file

    p = require_file(path, "input file")
    try:
        text = p.read_text("utf-8-sig")  # tolerate a BOM from Windows editors
    except UnicodeDecodeError as exc:
        raise FormatError(f"'{p}' is not UTF-8 text.", hint="Save it as UTF-8 and retry.") from exc
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{p}:{lineno}: invalid JSON ({exc.msg}).",
                                  hint="Each line must be one JSON object or plain text.") from exc
            prompt = _prompt_of(obj, f"{p}:{lineno}")
            rec_id = obj.get("id", len(records))
            records.append({"id": rec_id, "prompt": prompt, "source": obj})
        else:
            records.append({"id": len(records), "prompt": line})
    if not records:
        raise InputError(f"'{p}' contains no prompts.", hint="Put one prompt per line.")
    return records


def _prompt_of(obj: Any, where: str) -> str:
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: expected a JSON object.")
    if isinstance(obj.get("instruction"), str):
        extra = obj.get("input")
        return obj["instruction"] + (f"\n{extra}" if isinstance(extra, str) and extra else "")
    if isinstance(obj.get("prompt"), str):
        return obj["prompt"]
    raise FormatError(f"{where}: the record has neither 'instruction' nor 'prompt' text.")


@click.command()
@click.argument("model_path", metavar="MODEL.gguf", type=click.Path(dir_okay=False))
@click.option("--prompt", "-p", "prompts", multiple=True, help="Prompt text; repeatable.")
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Prompt file: one per line, or JSONL with instruction/input or prompt.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Predictions JSONL file (default: stdout).")
@template_option
@click.option("--system", "-s", default=None, help="System prompt for every prompt.")
@click.option("--no-template", is_flag=True, help="Use prompts as raw text, not as chat messages.")
@lora_option
@gpu_layers_option
@ctx_option
@threads_option
@sampling_options
@force_option
@json_option
def generate(model_path: str, prompts: tuple[str, ...], input_path: Path | None,
             output: str | None, template: str | None, system: str | None, no_template: bool,
             lora: tuple[str, ...], n_gpu_layers: int, n_ctx: int | None, n_threads: int | None,
             force: bool, as_json: bool, **kwargs: Any) -> None:
    """Answer prompts without interaction; predictions as JSONL, with a progress bar."""
    import lamina
    from lamina.files import atomic_output, check_output_path
    from lamina.templates import get_template
    from lamina.ui.console import items_progress

    if bool(prompts) == bool(input_path):
        raise click.UsageError("Give either --prompt TEXT or --input FILE.")
    records = ([{"id": i, "prompt": p} for i, p in enumerate(prompts)] if prompts
               else read_prompts(input_path))  # type: ignore[arg-type]
    if output:
        check_output_path(output, force=force)
    if template is not None:
        get_template(template)
    overrides = sampling_overrides(kwargs)
    model = lamina.load(model_path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                        lora=list(lora), template=template)
    params = model.default_params.replace(**overrides)

    def run_one(rec: dict[str, Any]) -> dict[str, Any]:
        if no_template:
            text = model.generate(rec["prompt"], params)
        else:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": rec["prompt"]}]
            text = model.chat(messages, params)
        stats = model.last_stats
        return {"id": rec["id"], "prompt": rec["prompt"], "output": str(text).strip(),
                "completion_tokens": stats.completion_tokens, "finish_reason": stats.finish_reason}

    if not output and len(records) == 1 and not as_json and prompts:
        click.echo(run_one(records[0])["output"])
        return

    def run_all(write: Any) -> None:
        with items_progress("prompts") as progress:
            task = progress.add_task("Generating", total=len(records))
            for rec in records:
                write(json.dumps(run_one(rec), ensure_ascii=False) + "\n")
                progress.advance(task)

    if output:
        with atomic_output(output, force=force) as tmp, open(tmp, "w", encoding="utf-8") as f:
            run_all(f.write)
        from lamina.ui.console import err_console, escape

        err_console.print(f"[green]Wrote[/] {len(records)} predictions to {escape(str(output))}")
    else:
        run_all(lambda s: click.echo(s, nl=False))
