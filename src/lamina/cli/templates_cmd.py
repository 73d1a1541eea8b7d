"""``lamina templates``: the built-in chat templates, each with a rendered example."""

from __future__ import annotations

import json

import click

from lamina.cli.options import json_option


@click.command()
@click.argument("name", required=False)
@click.option("--jinja", "show_jinja", is_flag=True, help="Also print the Jinja source.")
@json_option
def templates(name: str | None, show_jinja: bool, as_json: bool) -> None:
    """List chat templates (or show one) with a rendered two-turn example."""
    from lamina.templates import get_template, list_templates

    items = [get_template(name)] if name else list_templates()
    if as_json:
        click.echo(json.dumps([
            {"name": t.name, "description": t.description, "default_system": t.default_system,
             "stop": list(t.stop), "sampling_defaults": dict(t.sampling_defaults),
             "example": t.example(), "jinja": t.jinja} for t in items], ensure_ascii=False,
            indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from lamina.ui.console import console

    table = Table(title="Chat templates (use with --template NAME)", show_lines=True)
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("defaults")
    table.add_column("rendered example (\\n shown as line breaks)")
    for t in items:
        defaults = ", ".join(f"{k}={v}" for k, v in t.sampling_defaults.items())
        stops = ", ".join(repr(s) for s in t.stop)
        table.add_row(t.name, t.description,
                      "\n".join(x for x in (defaults, f"stop: {stops}" if stops else "") if x) or "-",
                      Text(t.example()))
    console.print(table)
    if show_jinja:
        for t in items:
            console.print(f"[bold]{t.name}[/]")
            console.print(Text(t.jinja))
