"""``lamina convert`` / ``merge`` / ``checksum``: thin click layers over ``lamina.convert``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import force_option, json_option, name_option, output_option

_sha256_option = click.option(
    "--sha256", "sha256", type=click.Path(path_type=Path), default=None,
    help="Checksum list (sha256sum output, SHA256.md...) to verify the input files against.")


def _merge_inputs(func: Any) -> Any:
    """--lora/--diff/--tokenizer, shared by convert and merge so names never drift."""
    func = click.option("--tokenizer", type=click.Path(path_type=Path), default=None,
                        help="Folder with tokenizer.model or tokenizer.json to use (default: "
                        "the last LoRA's or diff's, else the base's).")(func)
    func = click.option("--diff", type=click.Path(path_type=Path), default=None,
                        help="Weight-diff folder: tuned = base + diff (KnowLM/CaMA style).")(func)
    func = click.option("--lora", "loras", multiple=True, type=click.Path(path_type=Path),
                        help="PEFT LoRA adapter folder, merged in the order given; "
                        "repeatable.")(func)
    return func


def _bytes_progress(as_json: bool) -> Any:
    from lamina.ui.console import bytes_progress

    progress = bytes_progress(transient=as_json)
    if as_json:
        progress.disable = True
    return progress


def _print_notes(notes: list[str]) -> None:
    from lamina.ui.console import err_console, escape

    for note in notes:
        err_console.print(f"[yellow]Note:[/] {escape(note)}", highlight=False)


@click.command()
@click.argument("base", type=click.Path(path_type=Path))
@_merge_inputs
@click.option("--template", default=None,
              help="Chat template recorded in the file (see `lamina templates`; default: "
                   "the checkpoint's own chat_template, if it has one).")
@click.option("--outtype", type=click.Choice(["f32", "f16", "bf16", "q8_0"]), default="f16",
              show_default=True, help="Tensor type of the output.")
@_sha256_option
@name_option
@output_option
@force_option
@json_option
def convert(base: Path, loras: tuple[Path, ...], diff: Path | None, tokenizer: Path | None,
            template: str | None, outtype: str, sha256: Path | None, model_name: str | None,
            output: str, force: bool, as_json: bool) -> None:
    """Convert an HF/Meta LLaMA, Qwen2 or Baichuan (+ LoRA patches or a weight diff) into one
    GGUF file.

    \b
    Example (Chinese-Alpaca-Plus = LLaMA + Plus LoRA + Alpaca-Plus LoRA):
      lamina convert llama-7b-hf --lora chinese-llama-plus-lora-7b \\
          --lora chinese-alpaca-plus-lora-7b --template alpaca -o alpaca-plus-7b.f16.gguf
    """
    from lamina.convert.pipeline import ConvertOptions
    from lamina.convert.pipeline import convert as run_convert
    from lamina.files import check_output_path

    check_output_path(output, force=force)  # before the progress bar starts

    opts = ConvertOptions(base=base, output=Path(output), loras=list(loras), diff=diff,
                          tokenizer=tokenizer, template=template, outtype=outtype, force=force,
                          sha256=sha256, model_name=model_name)
    with _bytes_progress(as_json) as progress:
        report = run_convert(opts, progress=progress)
    if as_json:
        click.echo(json.dumps({"output": str(report.output), "outtype": report.outtype,
                               "bytes": report.output_bytes, "seconds": round(report.seconds, 3),
                               "tensors": report.type_histogram, "notes": report.notes,
                               "provenance": report.provenance}, ensure_ascii=False))
        return
    from lamina.files import human_bytes
    from lamina.ui.console import console, escape

    _print_notes(report.notes)
    console.print(f"[green]Wrote[/] {escape(str(report.output))} ({human_bytes(report.output_bytes)}, "
                  f"{report.n_tensors} tensors, {report.seconds:.1f} s)")


@click.command()
@click.argument("base", type=click.Path(path_type=Path))
@_merge_inputs
@click.option("--format", "fmt", type=click.Choice(["safetensors", "pth"]), default="safetensors",
              show_default=True, help="HF folder (safetensors) or Meta original layout (.pth).")
@click.option("--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default=None,
              help="Weight dtype of the output (default: the base model's).")
@_sha256_option
@name_option
@click.option("--output", "-o", "output", type=click.Path(path_type=Path), required=True,
              help="Output folder.")
@force_option
@json_option
def merge(base: Path, loras: tuple[Path, ...], diff: Path | None, tokenizer: Path | None,
          fmt: str, dtype: str | None, sha256: Path | None, model_name: str | None,
          output: Path, force: bool, as_json: bool) -> None:
    """Merge LoRA patches (or a diff) into the base and save an HF (or Meta .pth) folder."""
    from lamina.convert.merge import MergeOptions
    from lamina.convert.merge import merge as run_merge
    from lamina.files import check_output_path

    check_output_path(output, force=force, is_dir=True)  # before the progress bar starts

    opts = MergeOptions(base=base, output=output, loras=list(loras), diff=diff,
                        tokenizer=tokenizer, format=fmt, dtype=dtype, force=force, sha256=sha256,
                        model_name=model_name)
    with _bytes_progress(as_json) as progress:
        report = run_merge(opts, progress=progress)
    if as_json:
        click.echo(json.dumps({"output": str(report.output), "format": report.format,
                               "dtype": report.dtype, "bytes": report.output_bytes,
                               "seconds": round(report.seconds, 3), "files": report.files,
                               "notes": report.notes, "provenance": report.provenance},
                              ensure_ascii=False))
        return
    from lamina.files import human_bytes
    from lamina.ui.console import console, escape

    _print_notes(report.notes)
    console.print(f"[green]Wrote[/] {escape(str(report.output))}/ ({report.format}, {report.dtype}, "
                  f"{human_bytes(report.output_bytes)}, {report.seconds:.1f} s)")


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--sha256", "sha256", type=click.Path(path_type=Path), default=None,
              help="Checksum list to verify against (default: SHA256SUMS, *.sha256, "
              "checklist.chk... found in the folder).")
@json_option
def checksum(target: Path, sha256: Path | None, as_json: bool) -> None:
    """Print the SHA-256 of a file or of every file in a folder, and verify them against a list.

    Exits with an error when any listed file does not match.
    """
    from lamina.convert.checksums import checksum_target, raise_on_mismatch

    with _bytes_progress(as_json) as progress:
        rows, list_path = checksum_target(target, sha256, progress=progress)
    if as_json:
        click.echo(json.dumps({"list": str(list_path) if list_path else None,
                               "files": [r.__dict__ for r in rows]}, ensure_ascii=False))
    else:
        from rich.table import Table

        from lamina.files import human_bytes
        from lamina.ui.console import console, escape

        styles = {"ok": "green", "mismatch": "bold red", "missing": "yellow", "unlisted": "dim"}
        table = Table(title=escape(f"SHA-256 of {target}" + (f" (checked against {list_path})"
                                                             if list_path else "")))
        table.add_column("file", overflow="fold")
        table.add_column("size", no_wrap=True)
        table.add_column("sha256", overflow="fold", min_width=32)
        table.add_column("status", no_wrap=True)
        for r in rows:
            name = Path(r.file)
            if target.is_dir() and name.is_relative_to(target):
                name = name.relative_to(target)
            table.add_row(escape(str(name)), human_bytes(r.size) if r.status != "missing" else "-",
                          r.digest or "-", f"[{styles[r.status]}]{r.status}[/]")
        console.print(table)
    raise_on_mismatch(rows, list_path)
