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


def _spec_probes(files: tuple[Path, ...], dirs: tuple[Path, ...]) -> list[Any]:
    """The probe specs given (``--probe-file``, ``--probe-dir``); a bad one is BadInput naming the flag."""
    from audit.errors import BadInput
    from probes import DatasetError, all_probes, load_probe_specs

    try:
        return load_probe_specs(files, dirs, builtin=all_probes())[0]
    except DatasetError as exc:
        raise BadInput(str(exc), setting="probe_files") from None


@cli.group(name="probes", invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--probe-file", "probe_files", multiple=True, type=click.Path(path_type=Path), metavar="SPEC",
              help="Also list this probe spec (YAML; repeatable).")
@click.option("--probe-dir", "probe_dirs", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Also list every probe spec (*.yaml, *.yml) in DIR (repeatable).")
@click.pass_context
def probes_cmd(ctx: click.Context, fmt: str, probe_files: tuple[Path, ...], probe_dirs: tuple[Path, ...]) -> None:
    """List every registered probe (and the given probe specs) with its risks, kind and description."""
    if ctx.invoked_subcommand is not None:
        return
    from probes import all_probes

    listed = [*all_probes().values(), *_spec_probes(probe_files, probe_dirs)]
    rows: list[dict[str, Any]] = [{"id": p.id, "version": p.version, "risks": list(p.risks), "kind": p.kind,
             "description": p.description, "dataset_format": p.dataset_format,
             "metrics": [m.name for m in p.metric_specs], "source": p.source or "builtin"} for p in listed]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        origin = "" if r["source"] == "builtin" else f"  source: {shown(r['source'])}"
        click.echo(f"{shown(r['id'])}  [{r['kind']}]  risks: {shown(', '.join(r['risks']))}{origin}")
        click.echo(f"    {shown(r['description'])}")
        if r["dataset_format"]:
            click.echo(f"    --dataset: {r['dataset_format']}")


@probes_cmd.command(name="new")
@click.argument("name")
@click.option("--shape", type=click.Choice(["generated-rate", "likelihood-pairs", "multiple-choice", "multi-turn"]),
              default="generated-rate", show_default=True, help="What the probe measures and how it scores.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Directory for the spec and its items.")
def probes_new(name: str, shape: str, out_dir: Path) -> None:
    """Write a commented starter probe spec NAME.yaml and five items NAME.jsonl to edit.

    NAME is the probe's id (e.g. acme.dosing_advice) or a bare name (its id is then local.NAME)."""
    from audit.cli._starter import starter_files
    from audit.errors import BadInput

    try:
        files = starter_files(name, shape)
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from None
    # is_symlink: a dangling link "does not exist", yet writing would create or truncate its target
    taken = [out_dir / f for f in files if (out_dir / f).exists() or (out_dir / f).is_symlink()]
    if taken:
        raise BadInput(f"{taken[0]}: already exists; not overwritten (choose another NAME or --out)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        try:  # "x": created here or refused, never written through a link or over a file made meanwhile
            with open(out_dir / fname, "x", encoding="utf-8") as fh:
                fh.write(text)
        except FileExistsError:
            raise BadInput(f"{out_dir / fname}: already exists; not overwritten (choose another NAME or --out)") \
                from None
        click.echo(f"wrote {shown(out_dir / fname)}")
    spec = out_dir / next(iter(files))
    click.echo(f"next: edit them, then `lm-audit probes --probe-file {shown(spec)}` and "
               f"`lm-audit run --model MODEL --probe-file {shown(spec)}`")
