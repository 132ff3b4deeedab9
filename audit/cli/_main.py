"""``main``: runs the command line and maps every failure to an exit code and a one-line message.

Library errors name the setting (``BadInput(..., setting="batch_size")``); here they are
printed with the flag that sets it (``--batch-size``), so a user reads back what they typed.
"""

from __future__ import annotations

import os
import sys

import click

# Importing the command modules registers their commands on the group.
from audit.cli import (  # noqa: F401
    _compare,
    _gate,
    _prepare,
    _replay,
    _report,
    _run,
    _scorers,
    _taxonomy,
)
from audit.cli._group import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    cli,
    echo_err,
    one_line,
)
from audit.errors import AuditError, BadInput

# Settings whose flag is not ``--`` + the setting with dashes (``batch_size`` -> ``--batch-size``).
SETTING_FLAGS = {
    "probe_params": "--param",
    "datasets": "--dataset",
    "probe_files": "--probe-file",
    "probe_dirs": "--probe-dir",
    "scorers": "--scorer",
    "chat_template": "--no-chat-template",
    "model_cache": "--no-model-cache",
    "pii.nlp_model": "--pii-nlp-model",
    "pii.entities": "--pii-entities",
    "pii.threshold": "--pii-threshold",
    "endpoint.served_model": "--served-model",
    "endpoint.api_key_env": "--api-key-env",
    "endpoint.api": "--chat/--completions",
    "endpoint.concurrency": "--concurrency",
    "endpoint.timeout_s": "--request-timeout",
    "endpoint.retries": "--retries",
}


def flag_for(setting: str) -> str:
    """How the ``lm-audit run`` flags write ``setting``: ``--batch-size``; ``--scorer-labels ROLE=``
    for ``scorers.ROLE.labels`` (and thresholds); a key path inside a setting that has no flag of
    its own (``scorers.toxicity.name``, from a config file) as it is."""
    if setting in SETTING_FLAGS:
        return SETTING_FLAGS[setting]
    parts = setting.split(".")
    if len(parts) == 3 and parts[0] == "scorers" and parts[2] in ("labels", "threshold"):
        return f"--scorer-{parts[2]} {parts[1]}="
    if len(parts) == 3 and parts[0] == "scorers" and parts[2] in ("name", "model"):
        return f"--scorer {parts[1]}="
    if len(parts) > 1:
        return setting
    return "--" + setting.replace("_", "-")


def cli_message(exc: AuditError) -> str:
    """The error's one-line message, with a setting shown as its flag."""
    if isinstance(exc, BadInput) and exc.setting:
        flag = flag_for(exc.setting)
        return one_line(f"{flag}{'' if flag.endswith('=') else ' '}{exc.detail}")
    return one_line(str(exc))


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every failure to an exit code and a one-line message."""
    from probes import DatasetError
    from reports import ReportError
    from taxonomy import TaxonomyError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("LM_AUDIT_DEBUG"))
    try:
        rv = cli.main(args=args, prog_name="lm-audit", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        echo_err("interrupted; finished probes are kept in the run directory's report")
        code = EXIT_INTERRUPTED
    except click.UsageError as exc:
        hint = f" (see 'lm-audit {exc.ctx.command_path.partition(' ')[2]} --help')".replace("  ", " ") if exc.ctx else ""
        echo_err(f"error: {one_line(exc.format_message())}{hint}")
        code = EXIT_BAD_INPUT
    except click.ClickException as exc:
        echo_err(f"error: {one_line(exc.format_message())}")
        code = exc.exit_code
    except (TaxonomyError, ReportError, DatasetError) as exc:
        echo_err(f"error: {one_line(str(exc))}")
        code = EXIT_BAD_INPUT
    except AuditError as exc:
        if debug:
            raise
        echo_err(f"{'error' if exc.exit_code == EXIT_BAD_INPUT else 'runtime failure'}: {cli_message(exc)}")
        code = exc.exit_code
    except KeyboardInterrupt:
        echo_err("interrupted; finished probes are kept in the run directory's report")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        echo_err(f"runtime failure: {type(exc).__name__}: {one_line(str(exc))} (run with --debug for the traceback)")
        code = EXIT_RUNTIME
    sys.exit(code)
