"""``pip install connectbyname`` without extras, as a newcomer gets it: in a fresh venv
holding this tree's package and its runtime dependencies only (no urllib3, requests,
httpx or anyio), the engine and the command-line tool work, and each adapter and the
async engine say which extra to install instead of a bare ``No module named ...``.

One venv for the module, built with the running pip (``--python``, so the venv needs no
pip of its own) from a copy of the tree (an in-tree build would write ``build/`` here).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connectbyname._async import _missing_anyio
from connectbyname.adapters import missing_client
from connectbyname.testing import HTTPServer, refused_port

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: What each adapter's import says without its extra (the last line of the traceback).
ADAPTERS = {
    name: f"ModuleNotFoundError: connectbyname.adapters.{name} needs {name}: "
    f"pip install 'connectbyname[{name}]'"
    for name in ("urllib3", "requests", "httpx")
}
ASYNC_MESSAGE = (
    "ModuleNotFoundError: connectbyname's async engine (aconnect_by_name) needs anyio: "
    "pip install 'connectbyname[async]'"
)


class PlainVenv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.cwd = path  # not the tree: nothing importable from here but the venv's

    def run(self, *args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(arg) for arg in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.cwd,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            check=False,
        )

    def python_code(self, code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        # -I: no PYTHONPATH, no user site, no current directory on sys.path.
        return self.run(self.python, "-I", "-c", code, timeout=timeout)


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> PlainVenv:
    base = tmp_path_factory.mktemp("plain-install")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # symlinks=True: src/connectbyname/adapters stays a link to adapters/, as in the tree.
    for name in ("src", "adapters"):
        shutil.copytree(
            ROOT / name,
            source / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    venv = PlainVenv(base / "venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv.path], check=True, timeout=60
    )
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", venv.python, "install"),
            *("--quiet", "--no-input", "--no-deps", source, *PROJECT["dependencies"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return venv


@pytest.mark.slow
def test_the_venv_has_no_extras(plain_venv: PlainVenv) -> None:
    result = plain_venv.python_code(
        "import importlib.util, connectbyname\n"
        "print(connectbyname.__file__)\n"
        "for name in ('urllib3', 'requests', 'httpx', 'httpcore', 'anyio', 'trio', 'dns',\n"
        "             'opentelemetry'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
    )
    assert result.returncode == 0, result.stderr
    assert str(plain_venv.path) in result.stdout  # the installed copy, not the tree


@pytest.mark.slow
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_an_adapter_without_its_extra_names_it(plain_venv: PlainVenv, adapter: str) -> None:
    result = plain_venv.python_code(f"import connectbyname.adapters.{adapter}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ADAPTERS[adapter]
    # The error keeps the missing module's name, for code that checks it.
    result = plain_venv.python_code(
        "try:\n"
        f"    import connectbyname.adapters.{adapter}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc.name)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"urllib3", "requests", "httpx", "httpcore"}


@pytest.mark.slow
def test_otel_without_its_extra_names_it(plain_venv: PlainVenv) -> None:
    result = plain_venv.python_code("import connectbyname.otel")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: connectbyname.otel needs opentelemetry-api: "
        "pip install 'connectbyname[otel]'"
    )


@pytest.mark.slow
def test_the_async_engine_without_anyio_names_its_extra(plain_venv: PlainVenv) -> None:
    with refused_port("127.0.0.1") as port:
        result = plain_venv.python_code(
            "import asyncio, connectbyname\n"
            f"asyncio.run(connectbyname.aconnect_by_name('127.0.0.1', {port}, timeout=1))\n"
        )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == ASYNC_MESSAGE


@pytest.mark.slow
def test_the_engine_works_without_extras(plain_venv: PlainVenv) -> None:
    with HTTPServer("127.0.0.1") as server:
        result = plain_venv.python_code(
            "import connectbyname\n"
            f"with connectbyname.connect_by_name('127.0.0.1', {server.port}, timeout=3) as c:\n"
            "    c.socket.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
            "    print(c.remote_address, c.socket.recv(12))\n"
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"('127.0.0.1', {server.port}) b'HTTP/1.1 200'\n"


@pytest.mark.slow
def test_the_command_line_tool_works_without_extras(plain_venv: PlainVenv) -> None:
    tool = plain_venv.path / "bin" / "connectbyname"
    with refused_port("127.0.0.1") as port:
        result = plain_venv.run(tool, "127.0.0.1", str(port), "--timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RefusedError" in result.stderr
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = plain_venv.run(tool, "127.0.0.1", str(port), "--timeout", "1")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_demo_without_extras_says_what_to_install(plain_venv: PlainVenv) -> None:
    tool = plain_venv.path / "bin" / "connectbyname"
    result = plain_venv.run(tool, "demo", "--timeout", "0.5", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for extra in ("urllib3", "requests", "httpx"):
        assert f"pip install 'connectbyname[{extra}]'" in result.stdout


# In-process, without a venv: which missing modules are translated, and how.


def test_a_missing_client_module_becomes_the_extras_message() -> None:
    cause = ModuleNotFoundError("No module named 'httpcore'", name="httpcore")
    with pytest.raises(ModuleNotFoundError) as caught:
        missing_client(cause, "httpx")
    assert str(caught.value) == ADAPTERS["httpx"].removeprefix("ModuleNotFoundError: ")
    assert caught.value.name == "httpcore"
    assert caught.value.__cause__ is cause


def test_a_module_the_extra_does_not_bring_is_left_as_it_is() -> None:
    # A client broken some other way (here: its own dependency gone) is not ours to name.
    cause = ModuleNotFoundError("No module named 'h11'", name="h11")
    with pytest.raises(ModuleNotFoundError) as caught:
        missing_client(cause, "httpx")
    assert caught.value is cause


def test_anyio_missing_at_call_time_names_the_async_extra() -> None:
    cause = ModuleNotFoundError("No module named 'anyio'", name="anyio")
    with pytest.raises(ModuleNotFoundError) as caught:
        _missing_anyio(cause)
    assert str(caught.value) == ASYNC_MESSAGE.removeprefix("ModuleNotFoundError: ")
    assert caught.value.name == "anyio"
    other = ModuleNotFoundError("No module named 'sniffio'", name="sniffio")
    with pytest.raises(ModuleNotFoundError) as caught:
        _missing_anyio(other)
    assert caught.value is other
