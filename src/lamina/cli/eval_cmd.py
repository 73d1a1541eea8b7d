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
              help="Predictions: what `lamina extract` wrote (JSONL or a JSON array), or seed "
                   "000's answer file (a JSON array of ori_answer/gen_answer).")
@click.option("--gold", "gold", type=click.Path(path_type=Path), default=None,
              help="Gold records (IEPile test/train files, raw annotations, InstructIE, seed "
                   "000's pairs); default: the 'label' each prediction carries.")
@click.option("--task", default=None,
              help="NER, RE, EE, EET, EEA or KG (default: the records' own 'task', else NER).")
@click.option("--sort-by", "sort_by", default=None,
              help="Also score per value of this field (e.g. source = per data set).")
@click.option("--metrics", "metrics", default=None,
              help="f1, or rouge,bleu (seed 000's ROUGE-1/2/L + BLEU-4); default: rouge,bleu "
                   "for seed 000's answer file, else f1.")
@click.option("--fix", "fixes", multiple=True, metavar="NAME",
              help="Correct a DeepKE defect (repeatable, or comma-separated): re-subject-object, "
                   "kg-triples, instance-key, text-order, or all. Default: DeepKE's and seed "
                   "000's numbers as published.")
@click.option("--format", "style", type=click.Choice(["iepile", "pairs"]), default=None,
              help="Answer format of the predictions (default: pairs for seed 000's files, "
                   "else iepile).")
@json_option
def eval_command(pred: Path, gold: Path | None, task: str | None, sort_by: str | None,
                 metrics: str | None, fixes: tuple[str, ...], style: str | None,
                 as_json: bool) -> None:
    """Score extraction output against gold annotations."""
    from lamina.ie.evaluate import evaluate_files, parse_metrics

    report = evaluate_files(pred, gold, task=task,
                            metrics=parse_metrics(metrics) if metrics is not None else None,
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
    from lamina.ie.fixes import FIXES

    f1 = report.get("f1")
    if f1:
        f1_fixes = [f for f in report.get("fixes", ()) if FIXES[f].metrics == "f1"]
        if f1_fixes:
            err_console.print(escape(f"DeepKE's rules with --fix {','.join(f1_fixes)}: "
                                     "not comparable with published IEPile scores."),
                              style="yellow")
        _f1_table(console, Table, f1, escape(f"{report['task']} — {report['pred']}"))
        for source, sub in f1.get("by_source", {}).items():
            _f1_table(console, Table, sub, escape(f"source = {source}"), per_type=False)
    text = report.get("text")
    if text:
        order = "" if text["order"] == "seed000" else ", --fix text-order"
        table = Table(title=f"Seed 000's ROUGE (jieba words) and BLEU-4 (characters){order}, "
                            f"{text['records']} records")
        for col in ("ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU-4"):
            table.add_column(col, justify="right")
        table.add_row(*("–" if text[k] is None else f"{text[k]:.4f}"
                        for k in ("rouge-1", "rouge-2", "rouge-l", "bleu-4")))
        console.print(table)
        for skip in text["skipped"][:5]:
            err_console.print(escape(f"Record {skip['index'] + 1} left out of the scores it had "
                                     f"not reached ({skip['error']}), as seed 000 does."),
                              style="yellow")


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
