"""``lm-audit prepare``: load a model once (a GGUF file is converted into the local model cache)."""

from __future__ import annotations

import os

import click

from audit.cli._group import cli


@cli.command(name="prepare")
@click.option("--model", "spec", required=True, help="Built-in alias, checkpoint directory, .gguf file, or "
                                                     "openai:URL (check a served model).")
@click.option("--allow-download", is_flag=True, help="Allow fetching a hub id (otherwise offline only).")
@click.option("--served-model", help="With openai:URL: the model name on the server.")
@click.option("--api-key-env", metavar="VAR", help="With openai:URL: environment variable holding the API key.")
@click.option("--chat/--completions", "api", default=None, help="With openai:URL: force an API.")
def prepare_cmd(spec: str, allow_download: bool, served_model: str | None, api_key_env: str | None,
                api: bool | None) -> None:
    """Load a model once, converting a GGUF checkpoint into the local model cache, so that
    audits start in about a second (CI can cache that directory). For openai:URL, run the
    start-up checks an audit would and print what the server offers: the API, whether its prompt
    log-probabilities passed the check (and why not), and its fingerprint."""
    from audit.models import load_model
    from audit.models._converted import cache_root
    from audit.offline import enforce_offline

    enforce_offline(allow_download)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from audit.models import EndpointOptions, OpenAIBackend, is_endpoint

    if is_endpoint(spec):
        options = EndpointOptions(served_model=served_model, api_key_env=api_key_env,
                                  api="auto" if api is None else ("chat" if api else "completions"))
        remote = OpenAIBackend(spec, options)
        try:
            remote.connect()
            caps, info = remote.capabilities(), remote.info()
        finally:
            remote.close()
        click.echo(f"{info.id} at {remote.url}: {remote.api} API; log-likelihoods "
                   + ("available" if caps.loglikelihood else f"not available ({caps.loglikelihood_note})"))
        click.echo(f"  behavioural fingerprint {info.fingerprint_sha256[:16]}")
        for note in info.notes:
            click.echo(f"  {note}")
        return
    backend = load_model(spec, allow_download=allow_download, device="cpu")
    info = backend.info()
    click.echo(f"{info.id}: {info.parameters:,} parameters, sha256 {info.fingerprint_sha256[:16]}…")
    for note in info.notes:
        click.echo(f"  {note}")
    click.echo(f"model cache: {cache_root()}")
