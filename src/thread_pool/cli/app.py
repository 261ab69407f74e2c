"""The ``thread-pool`` command group and the one place failures become exit codes and one line."""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Sequence

import click

from thread_pool._model.redaction import scrub, scrub_chain
from thread_pool.cli import (
    cmd_backup,
    cmd_emulator,
    cmd_gc,
    cmd_maintain,
    cmd_manage,
    cmd_metrics,
    cmd_prewarm,
    cmd_status,
    cmd_stress,
)
from thread_pool.cli.render import safe
from thread_pool.errors import InvalidArgument, InvalidPoolKey, InvalidSettings, ThreadPoolError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
# Errors in what the user typed (a pool key, a setting, a number), found only once the command
# runs.
_USAGE_ERRORS = (InvalidPoolKey, InvalidSettings, InvalidArgument)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="openai-thread-pool", prog_name="thread-pool")
def cli() -> None:
    """Operate thread_pool pools: see them, size them, back them up, pre-warm them.

    Settings come from the environment and .env (THREAD_POOL_REDIS_URL, THREAD_POOL_KEY_PREFIX,
    ...) as the library reads them; flags override them. The upstream API key is read from
    OPENAI_API_KEY only.
    """


for module in (
    cmd_status,
    cmd_manage,
    cmd_backup,
    cmd_prewarm,
    cmd_metrics,
    cmd_maintain,
    cmd_gc,
    cmd_emulator,
    cmd_stress,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def _warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    click.echo(f"warning: {safe(scrub(str(message)))}", err=True)


def _fail(message: str, code: int) -> int:
    # One line, whatever the message quotes: no credential, no control character.
    click.echo(f"error: {safe(scrub(message))}", err=True)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exit 0 ok, 1 failed, 2 usage error, 130 interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    sys.exit(run(args))


def run(args: list[str]) -> int:
    """Run ``thread-pool args`` and return its exit code (failures reported on one line)."""
    debug = "--debug" in args
    try:
        with warnings.catch_warnings():
            # A warning (a misspelt THREAD_POOL_* variable) is one line, like an error.
            warnings.showwarning = _warning
            code = cli.main(args=args, prog_name="thread-pool", standalone_mode=False)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path} --help" if exc.ctx is not None else "thread-pool --help"
        return _fail(f"{exc.format_message()} (see '{where}')", EXIT_USAGE)
    except click.Abort as exc:
        # click turns Ctrl-C (and end of input at a prompt) into Abort.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _fail("interrupted", EXIT_INTERRUPTED)
        return _fail("aborted", EXIT_FAILED)
    except click.ClickException as exc:
        return _fail(exc.format_message(), EXIT_FAILED)
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else EXIT_FAILED
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if debug:
            sys.stderr.write(scrub("".join(traceback.format_exception(scrub_chain(exc)))))
        code = EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_FAILED
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, ThreadPoolError | OSError):
            # Every failure the library foresees is typed: anything else is a bug, said as such.
            message = f"unexpected {type(exc).__name__}: {message} (a bug; --debug shows where)"
        return _fail(message, code)
    # Without standalone mode click returns the code of ``--help``/``ctx.exit``, else None.
    return code if isinstance(code, int) else EXIT_OK
