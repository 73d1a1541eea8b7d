"""``lamina eval``: precision/recall/F1 (DeepKE's numbers) and ROUGE/BLEU of extractions.

The defaults reproduce DeepKE's IEPile ``eval_func.py`` digit for digit, its
defects included; ``--fix NAME`` switches on a named correction (docs/eval.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import json_option


@click.command("eval")
@click.option("--pred", "pred", type=click.Path(path_type=Path), required=True,
              help="Predictions: the JSONL written by `lamina extract`.")
@click.option("--gold", "gold", type=click.Path(path_type=Path), default=None,
              help="Gold JSONL (IEPile test file with 'label', or records with 'output'); "
                   "default: the 'label' each prediction carries.")
@click.option("--task", default="NER", show_default=True, help="NER, RE, EE, EET, EEA or KG.")
@click.option("--sort-by", "sort_by", default=None,
              help="Also score per value of this field (e.g. source = per data set).")
@click.option("--metrics", "metrics", default="f1", show_default=True,
              help="f1, or rouge,bleu for the seed-000 '类别_实体&...' answers.")
@click.option("--fix", "fixes", multiple=True, metavar="NAME",
              help="Correct a DeepKE defect (repeatable, or comma-separated): re-subject-object, "
                   "kg-triples, instance-key, or all. Default: DeepKE's numbers as published.")
@click.option("--format", "style", type=click.Choice(["iepile", "pairs"]), default="iepile",
              show_default=True, help="Answer format of the predictions.")
@json_option
def eval_command(pred: Path, gold: Path | None, task: str, sort_by: str | None, metrics: str,
                 fixes: tuple[str, ...], style: str, as_json: bool) -> None:
    """Score extraction output against gold annotations."""
    from lamina.ie.evaluate import evaluate_files, parse_metrics

    report = evaluate_files(pred, gold, task=task, metrics=parse_metrics(metrics),
                            sort_by=sort_by, style=style, fixes=fixes)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    from lamina.ui.console import console, err_console, escape

    if report.get("missing_predictions"):
        err_console.print(f"[yellow]{report['missing_predictions']} gold record(s) have no "
                          "prediction; scored as empty answers.[/]")
    f1 = report.get("f1")
    if f1:
        if report.get("fixes"):
            err_console.print(escape(f"DeepKE's rules with --fix {','.join(report['fixes'])}: "
                                     "not comparable with published IEPile scores."),
                              style="yellow")
        _f1_table(console, Table, f1, escape(f"{report['task']} — {report['pred']}"))
        for source, sub in f1.get("by_source", {}).items():
            _f1_table(console, Table, sub, escape(f"source = {source}"), per_type=False)
    text = report.get("text")
    if text:
        table = Table(title=f"Text overlap (jieba tokens), {text['records']} records")
        for col in ("ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU-4"):
            table.add_column(col, justify="right")
        table.add_row(*(f"{text[k]:.2f}" for k in ("rouge-1", "rouge-2", "rouge-l", "bleu-4")))
        console.print(table)


def _f1_table(console: Any, table_cls: Any, f1: dict[str, Any], title: str,
              per_type: bool = True) -> None:
    """``title`` is markup (escaped by the caller); type names from the data are not."""
    from lamina.ui.console import escape

    table = table_cls(title=f"{title}: {f1['records']} records, {f1['errors']} unparsable")
    for col, justify in (("level", "left"), ("type", "left"), ("P", "right"), ("R", "right"),
                         ("F1", "right"), ("tp", "right"), ("pred", "right"), ("gold", "right")):
        table.add_column(col, justify=justify)
    for level, s in f1["levels"].items():
        table.add_row(level, "[bold]all (micro)[/]", *_nums(s))
        if per_type:
            for typ, t in s["per_type"].items():
                table.add_row("", escape(typ), *_nums(t))
    console.print(table)


def _nums(s: dict[str, Any]) -> list[str]:
    return [f"{s['P']:.2f}", f"{s['R']:.2f}", f"{s['F1']:.2f}", str(s["tp"]), str(s["pred"]),
            str(s["gold"])]
