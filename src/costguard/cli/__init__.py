"""The ``costguard`` command.

Each command lives in its own module with a ``register(commands)`` that adds its parser;
:func:`parser` assembles them (the docs generate the CLI reference from it). Errors a user can
fix are one line on stderr with exit code 2; a costguard error, or output that cannot be
written (a full disk), is one line with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import _batch, _budget, _cache, _estimate, _ledger, _prices, _report
from ._common import CLIError

__all__ = ["main", "parser"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .._demo import run_demo

    return run_demo(args.ledger)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # exits, as argparse's
        """Usage mistakes: one line (and the usage) on stderr, exit code 2."""
        self.print_usage(sys.stderr)
        self.exit(2, f"costguard: {message}\n")


def parser() -> argparse.ArgumentParser:
    """The full ``costguard`` argument parser."""
    root = _Parser(prog="costguard", description="LLM spend control: see and cap what you spend.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="run a mixed workload through the fake provider")
    demo.add_argument("--ledger", help="ledger file to write (default: a temporary one)")
    demo.set_defaults(func=_cmd_demo)

    for module in (_report, _estimate, _prices, _ledger, _cache, _budget, _batch):
        module.register(commands)
    return root


def _drop_stdout() -> None:
    """Point stdout at the null device, so the exit flush cannot fail a second time."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file descriptor: nothing to flush
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``costguard`` with ``argv`` (default: the command line); return the exit code."""
    args = parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a failed write (a full disk) is reported here, not at exit
        return code
    except BrokenPipeError:  # `costguard report | head`: the reader left; so do we, quietly
        _drop_stdout()
        return 0
    except OSError as exc:  # the output could not be written: one line, not a traceback
        try:
            sys.stdout.flush()
        except OSError:
            _drop_stdout()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"costguard: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except CLIError as exc:
        print(f"costguard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("costguard: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a library error: one line, not a traceback
        from .._errors import CostGuardError

        if isinstance(exc, CostGuardError):
            print(f"costguard: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
