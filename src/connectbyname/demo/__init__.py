"""The offline demo (``connectbyname demo``), and the ``connectbyname`` command itself.

The demo sits above everything else: it uses the adapters and the testing toolkit, and
nothing in the library imports it. So the console script enters here, at the top of the
import graph: `command` runs the demo for ``connectbyname demo`` and hands every other
command line to the core's tool (``connectbyname._cli``), which knows nothing of it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._cli import main as _tool
from ._demo import main

__all__ = ["command", "main"]


def command(argv: Sequence[str] | None = None) -> int:
    """The ``connectbyname`` console script: ``demo [options]`` runs the offline demo,
    anything else is ``connectbyname NODENAME SERVICENAME ...`` (see ``--help``)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        return main(arguments[1:])
    return _tool(arguments)


if __name__ == "__main__":  # python -m connectbyname.demo
    sys.exit(main(sys.argv[1:]))
