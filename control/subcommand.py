"""An omsctl sub-command defined once: registered on omsctl's parsers and
runnable on its own (``python -m control.whatif``), with the same
arguments and the same handling of a bad configuration or input."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def register(sub, name: str, help: str, doc: str, add_arguments: AddArguments,
             run: Run) -> argparse.ArgumentParser:
    """`name` on omsctl's sub-command parsers; the description is the first
    paragraph of the module's `doc`."""
    p = sub.add_parser(name, help=help, description=doc.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def standalone(name: str, doc: str, add_arguments: AddArguments, run: Run,
               argv: list[str] | None = None) -> int:
    """``omsctl NAME ...`` on its own: a configuration or input error is one
    line on stderr and status 2, as under omsctl."""
    from control.config import ConfigError

    p = argparse.ArgumentParser(prog=f"omsctl {name}", description=doc.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (ConfigError, ValueError, OSError) as e:
        print(f"omsctl: {e}", file=sys.stderr)
        return 2
