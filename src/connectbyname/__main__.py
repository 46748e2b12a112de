"""``python -m connectbyname``: the ``connectbyname`` command (the demo included).

An entry point, like the console script: nothing imports it, so it may start at the
top of the import graph (`connectbyname.demo.command`)."""

import sys

from .demo import command

sys.exit(command())
