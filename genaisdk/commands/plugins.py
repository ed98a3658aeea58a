"""`genai plugins [--json]`: every plugin the registry saw, and what became of it."""

from __future__ import annotations

import json

import click

from genaisdk.hookspecs import PROJECT


def plugins_to_json(infos: list) -> list[dict]:
    """The JSON form of `Registry.plugins` (one object per plugin, in registry order)."""
    return [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "status": info.status,
            "builtin": info.builtin,
            "target": info.target,
            "hooks": list(info.hooks),
            "records": dict(info.records),
            "error": info.error,
            "seconds": round(info.seconds, 4),
        }
        for info in infos
    ]


@click.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def command(as_json: bool) -> None:
    """List the built-in and installed plugins: version, status, hooks, records, errors.

    Status is `active`, `disabled` (deselected by GENAISDK_LOAD_PLUGINS,
    GENAISDK_DISABLE_PLUGINS or --no-plugins) or `failed` (the error says why; the plugin
    was skipped and everything else works). `load ms` is the time a plugin took to import
    and register its records, which every command that reads the catalogs waits for.
    """
    from genaisdk.registry import get_registry

    infos = get_registry().plugins
    if as_json:
        click.echo(json.dumps(plugins_to_json(infos), indent=2))
        return

    from rich.markup import escape

    from genaisdk.render.tables import print_fitted
    from genaisdk.render.text import make_console

    styles = {"active": "green", "disabled": "yellow", "failed": "bold red"}
    rows = []
    for info in infos:
        hooks = ", ".join(h.removeprefix(PROJECT + "_") for h in info.hooks)
        records = ", ".join(f"{count} {kind}" for kind, count in info.records.items())
        rows.append(
            [
                escape(info.name),
                escape(f"{info.distribution} {info.version}"),
                f"[{styles[info.status]}]{info.status}[/]",
                hooks or "-",
                records or "-",
                f"{info.seconds * 1e3:.0f}",
            ]
        )
    console = make_console()
    hidden = print_fitted(console, "genaisdk plugins", ("plugin", "distribution", "status", "hooks", "records", "load ms"),
                          rows, drop=("hooks", "load ms"), right=("load ms",))
    if hidden:
        console.print(f"[dim]not shown: {', '.join(hidden)} (--json has every field)[/]")
    for info in infos:
        if info.error:
            console.print(f"[bold red]{escape(info.name)}[/] failed: {escape(info.error)}")
