"""The offline demo (``connectbyname demo``)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    """Placeholder until the demo lands; exits with the usage status."""
    print("connectbyname demo: not built yet")
    return 2
