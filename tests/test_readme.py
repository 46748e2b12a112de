"""Every ```python example in README.md is a complete program that runs as written.

Each example is found by its fence. One right after a ``<!-- not run: REASON -->``
line (blank lines between allowed) is not run, for that reason (the few that need the
internet); it must still compile and define every name it uses. Every other example is
run in a fresh interpreter, on its own (its imports included), with a timeout, and
must exit 0, having printed what the ```text block right after it shows (numbers
aside: ports and times change from run to run). The examples bring their own servers
on loopback (``connectbyname.testing``) and nothing may reach beyond it: an audit hook
in the example's interpreter refuses (and fails the example for) any connect or
datagram to an address outside 127.0.0.0/8 and ::1, and any lookup of a name by the
system's resolver (a name the example maps with
``connectbyname.testing.patch_getaddrinfo`` never reaches it).

A failure names the example's line in README.md, and the example runs from a file padded
so that its traceback's line numbers are README.md's too.
"""

from __future__ import annotations

import builtins
import os
import re
import subprocess
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(?P<info>[\w+-]*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>\S.*?) -->$")
#: Seconds an example may take (each takes about one second).
TIMEOUT = 60


@dataclass(frozen=True)
class Example:
    line: int  # README.md's line of the opening fence; the code starts on the next
    source: str
    not_run: str | None  # the reason given in the marker, for an example not run
    output: str | None = None  # the ```text block right after it: what it prints

    @property
    def where(self) -> str:
        return f"README.md line {self.line}"


def read_examples(text: str) -> list[Example]:
    """The ```python blocks of ``text``, in order, with the marker before each."""
    lines = text.splitlines()
    examples = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j] == "```"), None)
        if end is None:
            raise ValueError(f"README.md line {index + 1}: a ``` fence is never closed")
        if fence["info"] == "python":
            before = next((line for line in reversed(lines[:index]) if line.strip()), "")
            marker = NOT_RUN.match(before)
            source = "\n".join(lines[index + 1 : end]) + "\n"
            output = _text_after(lines, end + 1)
            examples.append(Example(index + 1, source, marker and marker["reason"], output))
        index = end + 1
    return examples


def _text_after(lines: list[str], index: int) -> str | None:
    """The content of a ```text block starting at ``index`` (blank lines before it
    allowed), or ``None``."""
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines) or lines[index] != "```text" or "```" not in lines[index + 1 :]:
        return None  # (a fence never closed is reported when the reading gets there)
    end = lines.index("```", index + 1)
    return "\n".join(lines[index + 1 : end]) + "\n"


def shape(text: str) -> str:
    """``text`` with every number (ports, times) written as 0: what stays the same from
    one run of an example to the next."""
    return re.sub(r"\d+", "0", text)


EXAMPLES = read_examples(README.read_text(encoding="utf-8"))


def undefined_names(source: str) -> set[str]:
    """Names ``source`` reads but never defines (binds, imports) and builtins lack.
    Raises `SyntaxError` for source that does not compile."""
    compile(source, "README.md", "exec", dont_inherit=True)  # what symtable lets through
    top = symtable.symtable(source, "README.md", "exec")
    defined = set(dir(builtins)) | {
        symbol.get_name()
        for symbol in top.get_symbols()
        if symbol.is_assigned() or symbol.is_imported()
    }
    missing: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for symbol in table.get_symbols():
            free_here = table is top or symbol.is_global()
            if symbol.is_referenced() and free_here and symbol.get_name() not in defined:
                missing.add(symbol.get_name())
    return missing


# Runs the example (sys.argv[1]) under an audit hook that keeps it on loopback.
LOOPBACK_ONLY = r"""
import ipaddress, os, runpy, socket, sys

escaped = []


def loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ip = ipaddress.ip_address(str(host).partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def refuse(what):
    escaped.append(what)
    raise PermissionError(f"README example reached beyond loopback: {what}")


def audit(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args
        inet = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        if inet and address is not None and not loopback(address[0]):
            refuse(f"{event} to {address!r}")
    elif event.startswith(("socket.getaddrinfo", "socket.gethostby")):
        if args[0] is not None and not loopback(args[0]):
            refuse(f"{event} of {args[0]!r} by the system's resolver")


sys.addaudithook(audit)
path = sys.argv[1]
try:
    runpy.run_path(path, run_name="__main__")
finally:
    if escaped:
        sys.stdout.flush()
        print("README example reached beyond loopback:", *escaped, sep="\n  ", file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)
"""


def run_example(example: Example, directory: Path) -> subprocess.CompletedProcess[str]:
    # Padded with empty lines: the traceback's line numbers are README.md's.
    path = directory / "README.md"
    path.write_text("\n" * example.line + example.source, encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    return subprocess.run(
        [sys.executable, "-I", "-c", LOOPBACK_ONLY, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=directory,
        env=environment,
        check=False,
    )


def test_the_readme_has_examples_run_and_marked() -> None:
    run = [example for example in EXAMPLES if example.not_run is None]
    assert len(run) >= 5, "the parser found too few examples: has the README's fence changed?"
    # Not run: few (each with its reason, and an offline twin that is run).
    not_run = [example.line for example in EXAMPLES if example.not_run is not None]
    assert 0 < len(not_run) <= 3, f"examples not run, at README.md lines {not_run}: keep few"
    # Every marker sits right before an example (a stray one would mark nothing).
    lines = README.read_text(encoding="utf-8").splitlines()
    marked = {example.line for example in EXAMPLES if example.not_run is not None}
    for number, line in enumerate(lines, 1):
        if "not run" in line and line.startswith("<!--"):
            assert NOT_RUN.match(line), f"README.md line {number}: want <!-- not run: REASON -->"
            following = next(n for n in range(number, len(lines)) if lines[n].strip()) + 1
            assert following in marked, f"README.md line {number}: marks no ```python block"


def test_the_parser_keys_on_fences_and_markers() -> None:
    text = (
        "intro\n```python\nprint(1)\n```\n"
        "<!-- not run: needs the internet -->\n\n```python\nx = 1\n```\n"
        "```sh\nls\n```\n```python\nimport socket\n```\n\n```text\nout 1\n```\n"
    )
    assert read_examples(text) == [
        Example(2, "print(1)\n", None),
        Example(7, "x = 1\n", "needs the internet"),
        Example(13, "import socket\n", None, "out 1\n"),
    ]
    assert shape("+0.251s 127.0.0.1:41069\n") == shape("+0.001s 127.0.0.1:5\n")
    with pytest.raises(ValueError, match="line 1: a ``` fence is never closed"):
        read_examples("```python\nprint(1)\n")
    # What the checks of examples not run catch: the README's old broken examples.
    assert undefined_names("sock = socket.socket(socket.AF_INET6)\n") == {"socket"}
    assert undefined_names("def f():\n    return session.get(url)\nurl = 1\n") == {"session"}
    with pytest.raises(SyntaxError):
        undefined_names("async with f() as conn:\n    pass\n")


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"README.md:{e.line}" for e in EXAMPLES])
def test_the_example_compiles_and_defines_every_name(example: Example) -> None:
    try:
        missing = undefined_names(example.source)
    except SyntaxError as exc:
        line = example.line + (exc.lineno or 0)
        pytest.fail(f"{example.where}: a SyntaxError at README.md line {line}: {exc.msg}")
    assert not missing, f"{example.where}: undefined names: {', '.join(sorted(missing))}"


RUN = [example for example in EXAMPLES if example.not_run is None]


@pytest.mark.parametrize("example", RUN, ids=[f"README.md:{e.line}" for e in RUN])
def test_the_example_runs(example: Example, tmp_path: Path) -> None:
    try:
        result = run_example(example, tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.where}: the example still ran after {TIMEOUT} s:\n{exc.stderr!r}")
    assert result.returncode == 0, (
        f"{example.where}: the example failed (exit status {result.returncode}):\n"
        f"{result.stderr}{result.stdout}"
    )
    assert result.stdout, f"{example.where}: the example printed nothing"
    if example.output is not None:
        # What the README shows it printing is what it prints, numbers aside.
        assert shape(result.stdout) == shape(example.output), (
            f"{example.where}: the example printed\n{result.stdout}"
            f"where README.md shows\n{example.output}"
        )


@pytest.mark.parametrize(
    "source",
    [
        # Addresses that send nothing off this machine, should the hook ever fail.
        "import socket\nsocket.create_connection(('0.0.0.0', 9), timeout=1)\n",
        "import socket\nsocket.socket(socket.AF_INET6).connect_ex(('::', 9))\n",
        # Caught by the example: it fails all the same.
        "import socket\ntry:\n    socket.getaddrinfo('192.0.2.1', 80)\nexcept OSError:\n    pass\n",
    ],
    ids=["connect", "connect_ex", "getaddrinfo caught"],
)
def test_an_example_that_leaves_loopback_fails(source: str, tmp_path: Path) -> None:
    result = run_example(Example(1, source, None), tmp_path)
    assert result.returncode == 3, result.stderr
    assert "README example reached beyond loopback:" in result.stderr


def test_an_example_that_fails_names_its_readme_line(tmp_path: Path) -> None:
    result = run_example(Example(41, "x = 1\nraise SystemExit(undefined)\n", None), tmp_path)
    assert result.returncode == 1
    assert 'README.md", line 43' in result.stderr
