"""``lamina ie``: information-extraction data tools (``lamina ie convert``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lamina.cli.options import force_option, json_option


@click.group()
def ie() -> None:
    """Information-extraction data: turn annotations into IEPile instruction files."""


@ie.command("convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="IEPile instruction file to write (JSON Lines).")
@click.option("--task", required=True, help="NER, RE, EE, EET, EEA or KG.")
@click.option("--split", type=click.Choice(["train", "test"]), default="train",
              show_default=True,
              help="train: instruction + output per chunk; test: id + instruction + label.")
@click.option("--schema", "schema_path", type=click.Path(path_type=Path), default=None,
              help="DeepKE's schema.json (types / roles / {type: roles} lines), or one JSON "
                   "list or {type: roles} object; default: every type the annotations use.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the task instruction.")
@click.option("--split-num", type=int, default=None,
              help="Schema items per instruction (default per task: NER 6, RE/EE/EET/EEA 4, "
                   "KG 1; -1 = no split).")
@click.option("--random-sort", is_flag=True,
              help="Shuffle the schema items of train instructions (default: sorted by name).")
@click.option("--neg-ratio", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Train files: the share of negative schema items kept (1 = all, 0 = only "
                   "the record's own types).")
@click.option("--hard-negatives", "hard_path", type=click.Path(path_type=Path), default=None,
              help="Train files, NER/RE/EET: JSON {type: [confusable types]} (DeepKE's "
                   "cluster mode: each positive's hard negatives plus --split-num others).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the negative sampling and shuffling.")
@click.option("--source", default=None,
              help="The records' 'source' (default: the input's folder name, as DeepKE).")
@force_option
@json_option
def convert(src: Path, output: Path, task: str, split: str, schema_path: Path | None, lang: str,
            split_num: int | None, random_sort: bool, neg_ratio: float, hard_path: Path | None,
            seed: int, source: str | None, force: bool, as_json: bool) -> None:
    """Raw annotations (DeepKE's sample.json shapes, InstructIE) -> IEPile train or test file."""
    from lamina.files import read_json_object
    from lamina.ie.convert import ConvertOptions, convert_file

    hard = read_json_object(hard_path, "a JSON object {type: [types]}") if hard_path else None
    options = ConvertOptions(task=task, split=split, lang=lang, split_num=split_num,
                             random_sort=random_sort, neg_ratio=neg_ratio, hard_negatives=hard,
                             seed=seed, source=source)
    report = convert_file(src, output, options, schema_path=schema_path, force=force)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    from lamina.ui.console import err_console, escape

    parts = [f"{report['records']} records -> {report['written']} {split} instructions "
             f"({report['task']}, split_num {report['split_num']})"]
    if report["skipped"]:
        parts.append(f"{len(report['skipped'])} records gave none (e.g. "
                     f"{escape(report['skipped'][0])})")
    if report["bad"]:
        parts.append(f"[yellow]{report['bad']} bad records[/] -> "
                     f"{escape(str(report['errors_file']))}")
    err_console.print(", ".join(parts) + f"; wrote {escape(str(output))}", highlight=False)
