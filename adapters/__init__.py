"""Adapters that give existing HTTP clients the connect-by-name engine: one module per
client (``urllib3``, ``requests``, ``httpx``), each importing its client only when used.

Each needs its client, which ``pip install connectbyname`` does not bring: its extra
does (``connectbyname[urllib3]``, ``[requests]``, ``[httpx]``). Without it, importing
the adapter raises `ModuleNotFoundError` saying which extra to install.
"""

from __future__ import annotations

from typing import NoReturn

#: The top-level modules each extra brings (pyproject.toml's optional dependencies).
_EXTRA_MODULES = {
    "urllib3": ("urllib3",),
    "requests": ("requests", "urllib3"),
    "httpx": ("httpx", "httpcore", "anyio"),
}


def missing_client(exc: ModuleNotFoundError, extra: str) -> NoReturn:
    """Re-raise ``exc``, a client's import failing, as the error that says which extra
    installs it (the module ``connectbyname.adapters.<extra>`` needs it); ``name``
    stays the missing module's. A module the extra does not bring is re-raised as is."""
    missing = (exc.name or "").partition(".")[0]
    if missing not in _EXTRA_MODULES[extra]:
        raise exc
    raise ModuleNotFoundError(
        f"connectbyname.adapters.{extra} needs {extra}: pip install 'connectbyname[{extra}]'",
        name=exc.name,
    ) from exc
