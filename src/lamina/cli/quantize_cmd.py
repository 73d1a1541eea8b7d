"""``lamina quantize``, ``build``, ``verify``, ``info``: thin click layers over lamina.quantize."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lamina.cli.options import (
    ctx_option,
    force_option,
    json_option,
    name_option,
    threads_option,
)

if TYPE_CHECKING:  # pragma: no cover
    from lamina.build import BuildOptions, BuildReport


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _tensor_progress(label: str) -> tuple[Any, Any]:
    """A Rich progress bar counting tensors, and the callback that drives it."""
    from lamina.ui.console import items_progress

    progress = items_progress(unit="tensors", transient=True)
    task = progress.add_task(label, total=None)

    def on_tensor(index: int, total: int, name: str) -> None:
        progress.update(task, completed=index - 1, total=total,
                        description=f"{label} [dim]{name}[/]")

    return progress, on_tensor


def _histogram_text(histogram: dict[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in histogram.items())


# ------------------------------------------------------------------ quantize


def list_types_table() -> Any:
    from rich.table import Table

    from lamina.quantize.types import ALIASES, QUANT_TYPES

    table = Table(title="Quantization types (llama.cpp's llama_model_quantize)")
    for col in ("Type", "ftype", "Bits/weight", "Kind", "llama.cpp reference", "Needs"):
        table.add_column(col, justify="right" if col in ("ftype", "Bits/weight") else "left")
    for qt in QUANT_TYPES:
        needs = "--imatrix" if qt.needs_imatrix else ""
        bpw = f"{qt.bpw:g}" if qt.bpw else "-"
        table.add_row(qt.name, str(qt.ftype) if not qt.only_copy else "-", bpw, qt.kind,
                      qt.reference, needs)
    aliases = ", ".join(f"{a} = {t}" for a, t in ALIASES.items())
    table.caption = (f"Aliases: {aliases}. Bits/weight is the nominal size of the main tensor "
                     "type; K-quant mixes keep a few tensors at a higher type.")
    return table


@click.command()
@click.argument("input_path", metavar="IN.gguf", required=False, type=click.Path(path_type=Path))
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Output GGUF file.")
@click.option("--type", "-q", "qtype", default="Q4_K_M", show_default=True,
              help="Quantization type (see --list).")
@click.option("--list", "list_types", is_flag=True, help="List every quantization type and exit.")
@threads_option
@click.option("--imatrix", type=click.Path(path_type=Path), default=None,
              help="Importance matrix from llama.cpp's llama-imatrix (.gguf or .dat).")
@click.option("--keep-output-f16", is_flag=True,
              help="Store output.weight as F16 (bigger file, better quality at low bits).")
@force_option
@json_option
def quantize(input_path: Path | None, output: Path | None, qtype: str, list_types: bool,
             n_threads: int | None, imatrix: Path | None, keep_output_f16: bool, force: bool,
             as_json: bool) -> None:
    """Quantize an f32/f16 GGUF with llama.cpp's own quantizer (identical output)."""
    if list_types:
        if as_json:
            from dataclasses import asdict

            from lamina.quantize.types import QUANT_TYPES

            _print_json([asdict(t) for t in QUANT_TYPES])
        else:
            from lamina.ui.console import console

            console.print(list_types_table())
        return
    if input_path is None or output is None:
        raise click.UsageError("Give the input GGUF and -o OUT.gguf (or --list to see the types).")
    from lamina.quantize.quantizer import quantize as run_quantize
    from lamina.quantize.types import get_quant_type

    label = f"Quantizing to {get_quant_type(qtype).name}"
    progress, on_tensor = _tensor_progress(label)
    with progress:
        report = run_quantize(input_path, output, qtype, n_threads=n_threads, imatrix=imatrix,
                              keep_output_f16=keep_output_f16, force=force, on_tensor=on_tensor)
    if as_json:
        _print_json(report.to_json())
        return
    from rich.table import Table

    from lamina.files import human_bytes
    from lamina.ui.console import console

    table = Table(title=f"Quantized to {report.qtype}")
    table.add_column("", style="bold")
    table.add_column("Input")
    table.add_column("Output")
    table.add_row("File", str(report.input), str(report.output))
    table.add_row("Size", human_bytes(report.input_bytes), human_bytes(report.output_bytes))
    table.add_row("Bits/weight", f"{report.input_bits_per_weight:.2f}",
                  f"{report.bits_per_weight:.2f}")
    table.add_row("Tensors", "", _histogram_text(report.type_histogram))
    table.add_row("Time", "", f"{report.seconds:.1f} s")
    console.print(table)


# ------------------------------------------------------------------ verify


def quality_table(report: Any, title: str = "Quality vs reference") -> Any:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("Metric", style="bold")
    table.add_column("Value", justify="right")
    table.add_column("Meaning")
    table.add_row("Perplexity (reference)", f"{report.ppl_reference:.4f}", "lower is better")
    table.add_row("Perplexity (model)", f"{report.ppl_model:.4f}",
                  f"ratio {report.ppl_ratio:.4f}")
    table.add_row("Mean KL(ref || model)", f"{report.kl_mean:.6f}", "0 = same distributions")
    table.add_row("99th pct KL", f"{report.kl_p99:.6f}", "worst 1% of tokens")
    table.add_row("Top-1 agreement", f"{100 * report.top1_agreement:.2f} %",
                  "same most likely next token")
    table.add_row("Tokens scored", str(report.n_scored),
                  f"{report.n_chunks} windows of {report.n_ctx}")
    return table


def _read_text(path: Path | None) -> str | None:
    if path is None:
        return None
    from lamina.errors import FormatError
    from lamina.files import require_file

    try:
        return require_file(path, what="text file").read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"The text file '{path}' is not UTF-8 text.",
                          hint="Save it as UTF-8 and try again.") from exc


def _chunk_progress(label: str) -> tuple[Any, Any]:
    from lamina.ui.console import items_progress

    progress = items_progress(unit="windows", transient=True)
    task = progress.add_task(label, total=None)

    def on_chunk(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, on_chunk


@click.command()
@click.argument("model", metavar="MODEL.gguf", type=click.Path(path_type=Path))
@click.option("--reference", "-r", required=True, type=click.Path(path_type=Path),
              help="The f32/f16 GGUF the model was quantized from.")
@click.option("--text", "text_file", type=click.Path(path_type=Path), default=None,
              help="UTF-8 text to evaluate on (default: lamina's built-in zh/en sample).")
@ctx_option
@click.option("--chunks", type=click.IntRange(min=1), default=None,
              help="Evaluate at most this many windows.")
@threads_option
@json_option
def verify(model: Path, reference: Path, text_file: Path | None, n_ctx: int | None,
           chunks: int | None, n_threads: int | None, as_json: bool) -> None:
    """Perplexity, KL divergence and top-1 agreement of a quantized model vs its reference."""
    from lamina.quantize.quality import DEFAULT_CTX
    from lamina.quantize.quality import verify as run_verify

    text = _read_text(text_file)
    progress, on_chunk = _chunk_progress("Comparing next-token distributions")
    with progress:
        report = run_verify(model, reference, text, n_ctx=n_ctx or DEFAULT_CTX,
                            n_threads=n_threads, max_chunks=chunks, on_chunk=on_chunk)
    if as_json:
        _print_json(report.to_json())
        return
    from lamina.ui.console import console, escape

    console.print(quality_table(report, title=escape(f"{model.name} vs {reference.name}")))


# ------------------------------------------------------------------ build


@click.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.option("--lora", "loras", multiple=True, type=click.Path(path_type=Path),
              help="PEFT LoRA adapter folder, merged in the order given; repeatable.")
@click.option("--diff", type=click.Path(path_type=Path), default=None,
              help="Weight-diff folder: tuned = base + diff.")
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None,
              help="Folder with tokenizer.model to embed (default: last LoRA's, else base's).")
@click.option("--type", "-q", "qtype", default="Q4_K_M", show_default=True,
              help="Quantization type (see `lamina quantize --list`).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Output GGUF file.")
@click.option("--template", default=None,
              help="Chat template recorded in the file (default: the checkpoint's own).")
@click.option("--intermediate", type=click.Choice(["f16", "f32", "bf16"]), default="f16",
              show_default=True, help="Type of the temporary full-precision GGUF.")
@threads_option
@click.option("--imatrix", type=click.Path(path_type=Path), default=None,
              help="Importance matrix from llama.cpp's llama-imatrix.")
@click.option("--keep-output-f16", is_flag=True, help="Store output.weight as F16.")
@click.option("--no-verify", is_flag=True, help="Skip the quality check on the built-in text.")
@click.option("--tmp-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the temporary folder goes (default: /dev/shm when RAM clearly "
                   "suffices, else next to the output).")
@name_option
@force_option
@json_option
def build(base: Path, loras: tuple[Path, ...], diff: Path | None, tokenizer: Path | None,
          qtype: str, output: Path, template: str | None, intermediate: str,
          n_threads: int | None, imatrix: Path | None, keep_output_f16: bool, no_verify: bool,
          tmp_dir: Path | None, model_name: str | None, force: bool, as_json: bool) -> None:
    """Convert + quantize (+ verify) in one command; intermediate files are always removed."""
    from lamina.build import BuildOptions

    report = build_with_progress(BuildOptions(
        base=base, output=output, qtype=qtype, loras=list(loras), diff=diff,
        tokenizer=tokenizer, template=template, intermediate=intermediate, n_threads=n_threads,
        imatrix=imatrix, keep_output_f16=keep_output_f16, verify=not no_verify, force=force,
        tmp_dir=tmp_dir, model_name=model_name))
    if as_json:
        _print_json(report.to_json())
        return
    render_build(report, intermediate)


def build_with_progress(opts: BuildOptions) -> BuildReport:
    """``lamina.build.run_build`` with a progress bar per stage (``build`` and ``demo``)."""
    from lamina.build import run_build
    from lamina.ui.console import bytes_progress

    qprogress, on_tensor = _tensor_progress("Quantizing")
    vprogress, on_chunk = _chunk_progress("Verifying")
    state: dict[str, Any] = {"active": None}

    def on_stage(stage: str) -> None:
        if state["active"] is not None:
            state["active"].stop()
        state["active"] = {"quantize": qprogress, "verify": vprogress}.get(stage)
        if state["active"] is not None:
            state["active"].start()

    try:
        return run_build(opts, convert_progress=bytes_progress(transient=True),
                         on_tensor=on_tensor, on_stage=on_stage, on_chunk=on_chunk)
    finally:
        if state["active"] is not None:
            state["active"].stop()


def render_build(report: BuildReport, intermediate: str) -> None:
    """The size/time table of a build, then its quality table."""
    from rich.table import Table

    from lamina.files import human_bytes
    from lamina.ui.console import console, escape

    table = Table(title=escape(f"Built {report.output} ({report.qtype})"))
    table.add_column("", style="bold")
    table.add_column("Size", justify="right")
    table.add_column("Bits/weight", justify="right")
    table.add_column("Time", justify="right")
    n = report.n_params
    table.add_row("Input checkpoint", human_bytes(report.input_bytes),
                  f"{8 * report.input_bytes / n:.2f}", "")
    where = "in RAM" if report.intermediate_dir == "/dev/shm" else "on disk"
    table.add_row(f"Intermediate {intermediate} ({where}, removed)",
                  human_bytes(report.intermediate_bytes),
                  f"{report.quantize.input_bits_per_weight:.2f}",
                  f"{report.stage_seconds['convert']:.1f} s")
    table.add_row(f"Output {report.qtype}", human_bytes(report.output_bytes),
                  f"{report.bits_per_weight:.2f}", f"{report.stage_seconds['quantize']:.1f} s")
    if "verify" in report.stage_seconds:
        table.add_row("Verify", "", "", f"{report.stage_seconds['verify']:.1f} s")
    table.add_row("Total", "", "", f"{sum(report.stage_seconds.values()):.1f} s")
    console.print(table)
    if report.quality is not None:
        console.print(quality_table(report.quality,
                                    title=f"Quality of {report.qtype} vs {intermediate} "
                                          "(built-in text)"))


# ------------------------------------------------------------------ info


@click.command()
@click.argument("model", metavar="MODEL.gguf", type=click.Path(path_type=Path))
@json_option
def info(model: Path, as_json: bool) -> None:
    """Architecture, size, tensor types, vocabulary, template and provenance of a GGUF."""
    from lamina.quantize.info import model_info

    data = model_info(model)
    if as_json:
        _print_json(data.to_json())
        return
    from rich.table import Table

    from lamina.files import human_bytes
    from lamina.ui.console import console, escape

    table = Table(title=escape(str(model)), show_header=False)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")

    def add(field: str, value: str) -> None:  # values (templates: [/INST]) are not markup
        table.add_row(field, escape(value))

    add("Architecture", data.architecture)
    add("Name", data.name or "-")
    add("Parameters", f"{data.n_params:,} ({data.n_params / 1e6:.1f} M)")
    add("File size", f"{human_bytes(data.file_bytes)} ({data.file_bytes:,} bytes)")
    add("File type", f"{data.file_type} ({data.bits_per_weight:.2f} bits/weight)")
    add("Layers / width", f"{data.block_count} / {data.embedding_length}")
    add("Heads (kv)", f"{data.head_count} ({data.head_count_kv})")
    add("Context length", str(data.context_length))
    add("Vocabulary", f"{data.vocab_size} ({data.tokenizer_model})")
    specials = ", ".join(f"{role}={v['id']} {v['text']!r}" for role, v in data.special_tokens.items())
    add("Special tokens", specials or "-")
    if data.chat_template_name:
        add("Chat template", data.chat_template_name)
    elif data.chat_template:
        add("Chat template", data.chat_template)
    else:
        add("Chat template", "- (choose one with --template)")
    if data.provenance:
        prov = data.provenance
        add("Base", str(prov.get("base", "-")))
        loras = prov.get("loras") or []
        add("LoRA (merge order)", "\n".join(
            str(x.get("path", x) if isinstance(x, dict) else x) for x in loras) or "-")
        add("Diff", str(prov.get("diff") or "-"))
        add("Provenance", json.dumps(prov, ensure_ascii=False))
    if data.lamina_version:
        add("Written by", f"lamina {data.lamina_version}")
    console.print(table)

    types = Table(title="Tensor types")
    types.add_column("Type")
    types.add_column("Tensors", justify="right")
    types.add_column("Bytes", justify="right")
    for name, count in data.tensor_types.items():
        types.add_row(name, str(count), human_bytes(data.tensor_type_bytes.get(name, 0)))
    console.print(types)
