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
    from rich.padding import Padding
    from rich.rule import Rule
    from rich.text import Text

    from lamina.ui.console import console

    # One block per template (not a table): a rendered prompt needs the full width
    # to stay readable in an 80-column terminal.
    console.print("[bold]Chat templates[/] (use with --template NAME)")
    for t in items:
        console.print(Rule(Text(t.name, style="bold cyan"), align="left"))
        console.print(Text(t.description))
        defaults = ", ".join(f"{k}={v}" for k, v in t.sampling_defaults.items())
        stops = ", ".join(repr(s) for s in t.stop)
        for label, value in (("defaults", defaults), ("stop", stops)):
            if value:
                console.print(Text.assemble((f"{label}: ", "dim"), value))
        console.print(Text("example (line breaks as they are in the prompt):", style="dim"))
        console.print(Padding(Text(t.example(), style="green"), (0, 0, 0, 2), expand=False))
        if show_jinja:
            console.print(Text("jinja:", style="dim"))
            console.print(Padding(Text(t.jinja), (0, 0, 0, 2), expand=False))
