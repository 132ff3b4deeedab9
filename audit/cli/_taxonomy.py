"""``lm-audit taxonomy`` (areas, risks and the probes behind each) and ``lm-audit probes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit.cli._group import cli, shown


@cli.command(name="taxonomy")
@click.option("--taxonomy", "path", type=click.Path(path_type=Path), help="Taxonomy YAML (default: bundled).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def taxonomy_cmd(path: Path | None, fmt: str) -> None:
    """Show the taxonomy: areas, risks, automation and the probes behind each risk."""
    from probes import all_probes
    from taxonomy import load_taxonomy

    tax = load_taxonomy(path, known_probes=all_probes())
    if fmt == "json":
        click.echo(json.dumps(tax.model_dump(mode="json"), indent=2, ensure_ascii=True))
        return
    risks = tax.risks()
    counts = {a: sum(1 for r in risks if r.automation.value == a) for a in ("automated", "partial", "manual")}
    click.echo(f"{shown(tax.name)} {shown(tax.version)}: {len(tax.areas)} areas, {len(risks)} risks "
               f"({', '.join(f'{v} {k}' for k, v in counts.items())})")
    for area in tax.areas:
        click.echo(f"{shown(area.id):<4} {shown(area.name)}")
        for r in area.risks:
            probes = ", ".join(r.probes) if r.probes else "-"
            click.echo(f"  {shown(r.id):<6} [{r.automation.value:<9}] {shown(r.name)}")
            click.echo(f"  {'':<6}  probes: {shown(probes)}")


@cli.command(name="probes")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def probes_cmd(fmt: str) -> None:
    """List every registered probe with its risks, kind and description."""
    from probes import all_probes

    rows: list[dict[str, Any]] = [{"id": p.id, "version": p.version, "risks": list(p.risks), "kind": p.kind,
             "description": p.description, "dataset_format": p.dataset_format,
             "metrics": [m.name for m in p.metric_specs]} for p in all_probes().values()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['id']}  [{r['kind']}]  risks: {', '.join(r['risks'])}")
        click.echo(f"    {r['description']}")
        if r["dataset_format"]:
            click.echo(f"    --dataset: {r['dataset_format']}")
