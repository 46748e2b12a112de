"""The package's layers: the engine imports none of its clients.

The core (every module of ``connectbyname`` but ``testing``, ``demo``, ``adapters`` and
``__main__``) must work on a plain install: it never imports the test toolkit, the demo,
an adapter, a client library or an optional dependency at import time. Read from the
source (every ``import``, at any depth, except under ``if TYPE_CHECKING``), and checked
once more in a fresh interpreter: importing ``connectbyname`` loads none of them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import connectbyname

PACKAGE = Path(connectbyname.__file__).parent
OUTER = ("connectbyname.testing", "connectbyname.demo", "connectbyname.adapters")
#: Optional: imported inside a function, where the feature that needs it is called.
#: Modules that are optional themselves, imported only by whoever needs them:
#: ``_tlsstream`` (an anyio stream, imported by an async call with TLS), ``dns`` (the
#: dnspython resolver, the ``dns`` extra) and ``otel`` (OpenTelemetry, the ``otel``
#: extra). The last test checks that nothing else imports them.
SELF_OPTIONAL = ("connectbyname._tlsstream", "connectbyname.dns", "connectbyname.otel")
OPTIONAL = ("anyio", "trio", "dns", "opentelemetry", "urllib3", "requests", "httpx", "httpcore")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _module_name(path).startswith(OUTER) and path.name != "__main__.py"
    ]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at_top_level)`` for every import in ``path``, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                visit(statement, top)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, top))
            # "from . import demo" names the module in the alias
            found.extend((f"{name}.{alias.name}", top) for alias in node.names)
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


@pytest.mark.parametrize("path", _core_modules(), ids=_module_name)
def test_the_core_never_imports_the_outer_layers(path: Path) -> None:
    outer = [name for name, _ in _imports(path) if name.startswith(OUTER)]
    assert outer == [], f"{_module_name(path)} imports {outer}"


@pytest.mark.parametrize(
    "path",
    [p for p in _core_modules() if _module_name(p) not in SELF_OPTIONAL],
    ids=_module_name,
)
def test_the_core_imports_optional_dependencies_only_where_they_are_used(path: Path) -> None:
    top = [name for name, at_top in _imports(path) if at_top and name.partition(".")[0] in OPTIONAL]
    assert top == [], f"{_module_name(path)} imports {top} when it is imported"


def test_importing_the_package_loads_no_optional_dependency() -> None:
    code = (
        f"SELF_OPTIONAL = {SELF_OPTIONAL!r}\n"
        "import sys, connectbyname\n"
        f"loaded = sorted(m for m in sys.modules if m.partition('.')[0] in {OPTIONAL!r}"
        " or m.startswith(('connectbyname.testing', 'connectbyname.demo',"
        " 'connectbyname.adapters') + SELF_OPTIONAL))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
