"""``lm-audit prepare``: load a model once (a GGUF file is converted into the local model cache)."""

from __future__ import annotations

import os

import click

from audit.cli._group import cli


@cli.command(name="prepare")
@click.option("--model", "spec", required=True, help="Built-in alias, checkpoint directory or .gguf file.")
@click.option("--allow-download", is_flag=True, help="Allow fetching a hub id (otherwise offline only).")
def prepare_cmd(spec: str, allow_download: bool) -> None:
    """Load a model once, converting a GGUF checkpoint into the local model cache, so that
    audits start in about a second (CI can cache that directory)."""
    from audit.models import load_model
    from audit.models._converted import cache_root
    from audit.offline import enforce_offline

    enforce_offline(allow_download)
    os.environ.setdefault("TQDM_DISABLE", "1")
    backend = load_model(spec, allow_download=allow_download, device="cpu")
    info = backend.info()
    click.echo(f"{info.id}: {info.parameters:,} parameters, sha256 {info.fingerprint_sha256[:16]}…")
    for note in info.notes:
        click.echo(f"  {note}")
    click.echo(f"model cache: {cache_root()}")
