"""``lamina convert``: thin click layer over ``lamina.convert.pipeline.convert``."""

from __future__ import annotations

from pathlib import Path

import click

from lamina.runtime.cli.options import force_option, json_option, output_option


@click.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.option("--lora", "loras", multiple=True, type=click.Path(path_type=Path),
              help="PEFT LoRA adapter folder, merged in the order given; repeatable.")
@click.option("--diff", type=click.Path(path_type=Path), default=None,
              help="Weight-diff folder: tuned = base + diff (KnowLM/CaMA style).")
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None,
              help="Folder with tokenizer.model to embed (default: last LoRA's, else base's).")
@click.option("--template", default=None, help="Chat template recorded in the file.")
@click.option("--outtype", type=click.Choice(["f32", "f16", "bf16", "q8_0"]), default="f16",
              show_default=True, help="Tensor type of the output.")
@output_option
@force_option
@json_option
def convert(base: Path, loras: tuple[Path, ...], diff: Path | None, tokenizer: Path | None,
            template: str | None, outtype: str, output: str, force: bool, as_json: bool) -> None:
    """Convert an HF/Meta LLaMA (+ LoRA patches or a weight diff) into one GGUF file."""
    from lamina.convert.pipeline import ConvertOptions, convert as run_convert

    opts = ConvertOptions(base=base, output=Path(output), loras=list(loras), diff=diff,
                          tokenizer=tokenizer, template=template, outtype=outtype, force=force)
    report = run_convert(opts)
    if as_json:
        import json

        click.echo(json.dumps({"output": str(report.output), "outtype": report.outtype,
                               "bytes": report.output_bytes, "seconds": report.seconds,
                               "tensors": report.type_histogram}, ensure_ascii=False))
    else:
        from lamina.console import console, human_bytes

        console.print(f"[green]Wrote[/] {report.output} ({human_bytes(report.output_bytes)}, "
                      f"{report.n_tensors} tensors, {report.seconds:.1f} s)")
