"""The network lab: a network namespace of the test's own, with its own resolver files, a
scripted DNS server, HTTP servers and blackholes, where code runs against the system's
real resolver (glibc's ``getaddrinfo``) instead of a stand-in.

Everything is made for one test and removed afterwards, on every path:

- `Namespace`: a network namespace (``ip netns``) named ``cbn-lab-PID-N``, with ``lo``
  up, addresses of the test's choice on it (documentation ranges, NAT64 forms...), and
  ``resolv.conf``, ``hosts``, ``nsswitch.conf`` and ``host.conf`` of the test's own in
  ``/etc/netns/NAME/``, which ``ip netns exec`` mounts over ``/etc`` for every process
  run inside: `Namespace.exec`, `Namespace.python`, `Namespace.call` (a function by
  reference, JSON arguments and result) and `Namespace.spawn` (long-running processes).
  `Namespace.run_inside` runs a function in a thread of *this* process that has entered
  the namespace: sockets made there live in the namespace, so `Namespace.http_server`
  and `Namespace.blackhole` serve inside it from the test's own process.
- `DNSServer`: the scripted DNS server (`connectbyname.testing.dnsserver`) running
  inside, with its query log.
- `Lab`: all of it from a short description::

      with Lab(
          dns={"dual.test": {"AAAA": Reply("::1", delay=0.3), "A": "127.0.0.1"}},
          http=["127.0.0.1"], blackhole=["::1"],      # the same port P on both
      ) as lab:
          lab.call(my_probe, "dual.test", lab.port)  # runs inside, returns JSON

Nothing here reaches beyond the namespace: a fresh namespace has no route anywhere but
its own addresses, so every query and connection stays inside it. The machine's own
``/etc`` is never written.

It needs Linux, root (``CAP_SYS_ADMIN`` and ``CAP_NET_ADMIN``) and iproute2's ``ip``;
without them `LabUnavailable` says which is missing (the pytest fixtures skip on it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import dataclasses
import inspect
import ipaddress
import itertools
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Self, TypeVar

from ._loopback import Blackhole, HTTPServer
from .dnsserver import (
    DROP,
    NAT64_PREFIX,
    NODATA,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    DNSConfig,
    NameSpec,
    Query,
    Reply,
    nat64_address,
    read_query_log,
    require_dnspython,
    svcb,
)

# The DNS server's script, re-exported: a test needs one import.
__all__ = [
    "DEFAULT_HOSTS",
    "DEFAULT_HOST_CONF",
    "DEFAULT_NSSWITCH",
    "DROP",
    "NAT64_PREFIX",
    "NODATA",
    "NXDOMAIN",
    "REFUSED",
    "SERVFAIL",
    "DNSConfig",
    "DNSServer",
    "Lab",
    "LabCallError",
    "LabUnavailable",
    "Namespace",
    "Process",
    "Query",
    "Reply",
    "Result",
    "nat64_address",
    "svcb",
    "sweep_stale",
    "unavailable_reason",
]

T = TypeVar("T")

#: The hosts file a namespace gets unless the test gives its own: Debian's.
DEFAULT_HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
#: nsswitch.conf: the hosts file, then DNS.
DEFAULT_NSSWITCH = "hosts: files dns\n"
#: host.conf: Debian's (every matching hosts line, not just the first).
DEFAULT_HOST_CONF = "multi on\n"

NETNS_RUN_DIR = Path("/var/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
#: The prefix of every namespace the lab makes; the rest is ``-PID-N``.
PREFIX = "cbn-lab"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-(\d+)$")
_CLONE_NEWNET = 0x40000000
_RESULT_MARKER = "\x1econnectbyname-lab-result\x1e"
_STOP_TIMEOUT = 3.0
_READY_TIMEOUT = 20.0  # a DNS server's start: generous, for a loaded machine

_counter = itertools.count(1)
_swept = False
# Open namespaces, closed at exit if a test never did (a strong reference on purpose).
_live: set[Namespace] = set()


class LabUnavailable(RuntimeError):
    """The lab cannot be made here; ``reason`` says why (not root, no ``ip``...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LabCallError(RuntimeError):
    """A function run by `Namespace.call` raised: ``type_name`` (``module.Qualname``),
    ``message`` and the child's ``remote_traceback``."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(
            f"{type_name}: {message}\n--- inside the namespace ---\n{remote_traceback}"
        )
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


class Result(NamedTuple):
    """How a command run inside a namespace ended."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    #: Seconds from start to exit, as this process saw them (process start included).
    elapsed: float

    def check(self) -> Result:
        """This result, or `subprocess.CalledProcessError` if it exited non-zero."""
        if self.returncode:
            raise subprocess.CalledProcessError(
                self.returncode, self.args, self.stdout, self.stderr
            )
        return self


def unavailable_reason() -> str | None:
    """Why a network namespace cannot be made here, or ``None`` if it may be."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed (Debian: apt-get install iproute2)"
    if not os.path.exists("/proc/self/ns/net"):
        return "the kernel has no network namespace support (/proc/self/ns/net is missing)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (wall clock), or ``None`` if there is none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/stat", encoding="ascii") as proc_stat:
            boot = next(int(line.split()[1]) for line in proc_stat if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _is_stale(name: str, *made_at: Path) -> bool:
    """Whether lab namespace ``name`` was left behind: the process that made it (the PID
    in its name) is gone, or is a later process that got the same PID (than the first
    of ``made_at`` that exists, by its modification time)."""
    match = _NAME.match(name)
    if match is None:
        return False  # not the lab's: never touched
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    started = _process_start(pid)
    if started is None:
        return True
    made = None
    for path in (*made_at, NETNS_ETC_DIR / name, NETNS_RUN_DIR / name):
        with contextlib.suppress(OSError):
            made = path.stat().st_mtime
            break
    # /proc's start time is rounded to clock ticks, and the btime to seconds.
    return made is not None and started > made + 2


def _kill_inside(name: str) -> None:
    """SIGKILL every process left in namespace ``name`` (never this one)."""
    listed = _ip("netns", "pids", name, check=False)
    for word in listed.stdout.split():
        if word.isdigit() and int(word) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(word), signal.SIGKILL)


def sweep_stale() -> list[str]:
    """Remove the lab namespaces (and ``/etc/netns`` folders) whose maker is gone, e.g.
    after a crashed or killed test run, with any process the lab left inside; return
    their names. Only ``cbn-lab-PID-N`` names are looked at, and one whose process
    still runs is never touched."""
    names: set[str] = set()
    for folder in (NETNS_RUN_DIR, NETNS_ETC_DIR):
        with contextlib.suppress(OSError):
            names.update(entry.name for entry in folder.iterdir())
    removed = []
    for name in sorted(names):
        if _is_stale(name):
            if (NETNS_RUN_DIR / name).exists():
                _kill_inside(name)
                _ip("netns", "delete", name, check=False)
            shutil.rmtree(NETNS_ETC_DIR / name, ignore_errors=True)
            removed.append(name)
    # Work folders: NAME-RANDOM in the temporary folder.
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}-*-*-*"):
        name = folder.name.rsplit("-", 1)[0]
        if folder.is_dir() and _is_stale(name, folder):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:  # Python 3.12+
        setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _prefixed(address: str) -> tuple[str, bool]:
    """``address`` with a host prefix length unless it has one, and whether it is IPv6."""
    interface = ipaddress.ip_interface(address)
    if "/" in address:
        return address, interface.version == 6
    return f"{interface.ip}/{interface.max_prefixlen}", interface.version == 6


def _on_loopback(address: str) -> bool:
    """Whether ``address`` is on ``lo`` in a fresh namespace already."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    return ip.is_loopback and (ip.version == 4 or ip == ipaddress.IPv6Address("::1"))


def _bootstrap() -> str:
    """The program `Namespace.call` runs inside: import the function, call it with the
    JSON arguments from stdin, print the JSON result after a marker."""
    return textwrap.dedent(
        f"""
        import importlib, importlib.util, json, os, pathlib, sys, traceback
        payload = json.loads(sys.stdin.read())
        for entry in reversed(payload["path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        try:
            name, file = payload["module"], payload["file"]
            try:
                if name == "__main__":
                    # A script's function: load the script under another name, so
                    # that its `if __name__ == "__main__":` part does not run.
                    name = "__connectbyname_lab_main__"
                    raise ImportError(name)
                module = importlib.import_module(name)
            except ImportError:
                if not file:
                    raise
                # A module imported by path (pytest's importlib mode): put the folder
                # its dotted name starts from on the path.
                root = pathlib.Path(file).resolve().parent
                for _ in name.split(".")[1:]:
                    root = root.parent
                sys.path.insert(0, str(root))
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    spec = importlib.util.spec_from_file_location(name, file)
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
            function = module
            for part in payload["qualname"].split("."):
                function = getattr(function, part)
            result = {{"ok": function(*payload["args"], **payload["kwargs"])}}
        except BaseException as exc:
            kind = type(exc)
            result = {{"error": {{
                "type": kind.__module__ + "." + kind.__qualname__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            }}}}
        text = json.dumps(result)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout.write("\\n" + {_RESULT_MARKER!r} + text + "\\n")
        sys.stdout.flush()
        os._exit(0)  # lookups still hanging in threads must not hold the exit up
        """
    )


class Process:
    """A long-running process inside a namespace (`Namespace.spawn`). It runs in a
    session of its own, and `stop` ends the whole session: SIGTERM, then SIGKILL."""

    def __init__(self, popen: subprocess.Popen[bytes], args: list[str], log: Path) -> None:
        self.popen = popen
        self.args = args
        self.pid = popen.pid
        #: Where its standard error goes.
        self.stderr_path = log

    def poll(self) -> int | None:
        """Its exit status, or ``None`` while it runs."""
        return self.popen.poll()

    def stderr(self) -> str:
        """What it wrote to standard error so far."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int:
        """End it (and anything it started in its session); its exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()
        return self.popen.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Process({self.pid}, {' '.join(self.args)!r})"


class DNSServer:
    """The lab's DNS server (`connectbyname.testing.dnsserver`) running in a namespace.

    ``config`` is its `DNSConfig`, ``host`` and ``port`` where it answers, ``process``
    its `Process`. `queries` reads its query log (kept after `stop`)."""

    def __init__(self, config: DNSConfig, process: Process, listen: list[tuple[str, int]]) -> None:
        self.config = config
        self.process = process
        self.host, self.port = listen[0]
        self.listen = listen
        assert config.log is not None
        self.log_path = Path(config.log)
        self._final: list[Query] | None = None

    def queries(
        self, name: str | None = None, type: str | None = None, transport: str | None = None
    ) -> list[Query]:
        """The queries received so far, oldest first, optionally only those for ``name``
        (case and trailing dot ignored), of record ``type``, over ``transport``."""
        queries = self._final if self._final is not None else read_query_log(str(self.log_path))
        wanted = name.lower().rstrip(".") if name is not None else None
        return [
            query
            for query in queries
            if (wanted is None or (query.name or "").lower().rstrip(".") == wanted)
            and (type is None or query.type == type)
            and (transport is None or query.transport == transport)
        ]

    def wait_for_queries(self, count: int = 1, timeout: float = 5.0, **filters: str) -> list[Query]:
        """Wait until ``count`` queries (matching ``filters``, see `queries`) arrived,
        up to ``timeout`` seconds; the matching queries then."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.queries(**filters)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)

    def clear(self) -> None:
        """Forget the queries so far (the server appends, so truncating is safe)."""
        if self._final is not None:
            self._final = []
        else:
            with contextlib.suppress(OSError):
                os.truncate(self.log_path, 0)

    def stop(self) -> None:
        """Stop the server; its log stays readable through `queries`."""
        if self._final is None:
            self.process.stop()
            self._final = read_query_log(str(self.log_path))

    def __repr__(self) -> str:
        return f"DNSServer({self.host}:{self.port})"


class Namespace:
    """A network namespace of one test's own (a context manager).

    On entry it makes the namespace ``cbn-lab-PID-N`` with ``lo`` up, adds
    ``addresses`` to ``lo`` (``"192.0.2.1"``, ``"2001:db8::1"``, ``"10.9.0.2/24"``...),
    removes ``127.0.0.1`` when ``ipv4`` is false (an IPv6-only namespace), and writes
    ``/etc/netns/NAME/``: ``resolv.conf`` (default ``nameserver 127.0.0.1``, or ``::1``
    without IPv4), ``hosts`` (`DEFAULT_HOSTS`), ``nsswitch.conf`` (`DEFAULT_NSSWITCH`),
    ``host.conf`` (`DEFAULT_HOST_CONF`), and any file of ``etc`` (``{"gai.conf":
    ...}``). Processes run inside see those files as ``/etc/...``. ``ip netns exec``
    mounts them over the machine's own files, so these must exist in ``/etc`` (else
    `LabUnavailable`); the default nsswitch.conf and host.conf are left out where the
    machine has none (glibc's defaults then apply: ``files dns``, ``multi off``).

    On exit (and at interpreter exit, for one never closed) it stops what it started,
    deletes the namespace and removes ``/etc/netns/NAME`` and its work folder. The first
    namespace of a process also sweeps stale ones (`sweep_stale`).

    Raises `LabUnavailable` when no namespace can be made here.
    """

    def __init__(
        self,
        *,
        resolv_conf: str | None = None,
        hosts: str = DEFAULT_HOSTS,
        nsswitch: str | None = None,
        host_conf: str | None = None,
        etc: Mapping[str, str] | None = None,
        addresses: Sequence[str] = (),
        ipv4: bool = True,
    ) -> None:
        self.name = ""
        self._files = {
            "resolv.conf": resolv_conf
            if resolv_conf is not None
            else f"nameserver {'127.0.0.1' if ipv4 else '::1'}\n",
            "hosts": hosts,
        }
        for filename, given, default in (
            ("nsswitch.conf", nsswitch, DEFAULT_NSSWITCH),
            ("host.conf", host_conf, DEFAULT_HOST_CONF),
        ):
            if given is not None:
                self._files[filename] = given
            elif (Path("/etc") / filename).is_file():
                self._files[filename] = default
        self._files.update(etc or {})
        for filename in self._files:
            if "/" in filename or filename in ("", ".", ".."):
                raise ValueError(f"not a file name of /etc: {filename!r}")
        self._addresses = list(addresses)
        self._ipv4 = ipv4
        self._stack = contextlib.ExitStack()
        self._processes: list[Process] = []
        self._made = False
        self._closed = False
        #: A folder for this namespace's files (configurations, logs); removed on close.
        self.workdir = Path()

    # ----------------------------------------------------------------- life cycle

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> Self:
        """Make the namespace (what entering the context does)."""
        global _swept  # noqa: PLW0603
        if self._made:
            return self
        reason = unavailable_reason()
        if reason is not None:
            raise LabUnavailable(reason)
        for filename in self._files:
            if not (Path("/etc") / filename).is_file():
                raise LabUnavailable(
                    f"/etc/{filename} does not exist here, and `ip netns exec` can only "
                    f"mount the namespace's {filename} over an existing file"
                )
        if not _swept:
            _swept = True
            with contextlib.suppress(Exception):
                sweep_stale()
        self.name = f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        etc_dir = NETNS_ETC_DIR / self.name
        try:
            etc_dir.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LabUnavailable(f"cannot make {etc_dir} for the resolver files: {exc}") from exc
        self._made = True
        _live.add(self)
        try:
            made = _ip("netns", "add", self.name, check=False)
            if made.returncode:
                raise LabUnavailable(
                    f"`ip netns add` failed (no network namespace support?): {made.stderr.strip()}"
                )
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
            for filename, text in self._files.items():
                (etc_dir / filename).write_text(text, encoding="utf-8")
            self.ip("link", "set", "lo", "up")
            if not self._ipv4:
                self.ip("address", "delete", "127.0.0.1/8", "dev", "lo")
            for address in self._addresses:
                self.add_address(address)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Tear everything down: in-process servers, processes, the namespace, its
        ``/etc/netns`` folder and work folder. Idempotent; errors are raised after
        everything was tried."""
        if self._closed or not self._made:
            self._closed = True
            return
        self._closed = True
        _live.discard(self)
        errors: list[BaseException] = []
        try:
            self._stack.close()
        except BaseException as exc:
            errors.append(exc)
        for process in reversed(self._processes):
            try:
                process.stop()
            except BaseException as exc:
                errors.append(exc)
        if (NETNS_RUN_DIR / self.name).exists():
            _kill_inside(self.name)  # anything that left its session (a daemon)
            deleted = _ip("netns", "delete", self.name, check=False)
            if deleted.returncode:
                errors.append(RuntimeError(f"`ip netns delete {self.name}`: {deleted.stderr}"))
        shutil.rmtree(NETNS_ETC_DIR / self.name, ignore_errors=True)
        if self.workdir != Path():
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise errors[0]

    @property
    def etc_dir(self) -> Path:
        """``/etc/netns/NAME``: the files processes inside see in ``/etc``."""
        return NETNS_ETC_DIR / self.name

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the namespace closes, before its processes stop
        (callbacks run last registered first)."""
        self._stack.callback(callback)

    def _check_open(self) -> None:
        if not self._made or self._closed:
            raise RuntimeError("the namespace is not open")

    # ----------------------------------------------------------------- set-up

    def ip(self, *args: str) -> str:
        """Run ``ip -n NAME ARGS...`` (e.g. ``ns.ip("route", "add", ...)``); its output."""
        self._check_open()
        return _ip("-n", self.name, *args).stdout

    def add_address(self, address: str, dev: str = "lo") -> None:
        """Add ``address`` (a host address unless a prefix is given) to ``dev``; IPv6
        without duplicate address detection, so it is usable at once."""
        prefixed, v6 = _prefixed(address)
        extra = ["nodad"] if v6 else []
        self.ip("address", "add", prefixed, "dev", dev, *extra)

    def add_interface(self, name: str = "cbn0") -> str:
        """A second interface, up, for addresses and routes off ``lo``: a ``dummy`` one,
        or where the kernel has no dummy driver, a veth pair with both ends inside (the
        peer is ``NAME`` + ``p``). Its name."""
        self._check_open()
        made = _ip("-n", self.name, "link", "add", name, "type", "dummy", check=False)
        if made.returncode:
            self.ip("link", "add", name, "type", "veth", "peer", "name", f"{name}p")
            self.ip("link", "set", f"{name}p", "up")
        self.ip("link", "set", name, "up")
        return name

    def write_etc(self, filename: str, text: str) -> None:
        """Replace ``/etc/netns/NAME/FILENAME`` (seen by processes started afterwards;
        glibc re-reads resolv.conf, hosts and nsswitch.conf when they change)."""
        self._check_open()
        if not (Path("/etc") / filename).is_file():
            raise ValueError(f"/etc/{filename} does not exist: `ip netns exec` cannot mount it")
        path = self.etc_dir / filename
        temporary = path.with_name(f".{filename}.new")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)

    # ----------------------------------------------------------------- running inside

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside (``ip netns exec NAME ...``)."""
        self._check_open()
        return ["ip", "netns", "exec", self.name, *argv]

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run ``argv`` inside and wait for it; raises `subprocess.TimeoutExpired` (after
        killing its whole session) past ``timeout``. ``env`` is added to ours."""
        args = self.command(argv)
        started = time.monotonic()
        popen = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env} if env else None,
            start_new_session=True,
            text=True,
        )
        try:
            stdout, stderr = popen.communicate(input, timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.communicate()
            raise
        return Result(args, popen.returncode, stdout, stderr, time.monotonic() - started)

    def python(
        self,
        code: str,
        *args: str,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run Python ``code`` (dedented) inside with this interpreter, ``args`` as
        ``sys.argv[1:]``."""
        return self.exec(
            [sys.executable, "-c", textwrap.dedent(code), *args], timeout=timeout, env=env
        )

    def call(
        self,
        function: Callable[..., Any],
        *args: Any,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``function(*args, **kwargs)`` in a new Python process inside and return
        its result. The function is passed by reference (a module-level function of an
        importable module, or of a test file) and its arguments and result must be JSON
        (tuples come back as lists). If it raises, `LabCallError` carries the traceback.
        Group several checks in one call: each costs a Python start (~0.1 s and up)."""
        qualname = getattr(function, "__qualname__", "")
        module = getattr(function, "__module__", None)
        if not module or "<" in qualname:
            raise ValueError(f"{function!r} is not a module-level function: it can't be found")
        try:
            file = inspect.getsourcefile(function) or ""
        except TypeError:
            file = ""
        payload = {
            "module": module,
            "file": file,
            "qualname": qualname,
            "args": list(args),
            "kwargs": kwargs,
            "path": [entry for entry in sys.path if entry],
        }
        result = self.exec(
            [sys.executable, "-c", _bootstrap()],
            input=json.dumps(payload),
            timeout=timeout,
            env=env,
        )
        head, marker, tail = result.stdout.rpartition(_RESULT_MARKER)
        if not marker:
            raise RuntimeError(
                f"{qualname} died inside {self.name} (exit status {result.returncode})\n"
                f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-4000:]}"
            )
        if head.strip():
            sys.stdout.write(head)
        if result.stderr:
            sys.stderr.write(result.stderr)
        outcome = json.loads(tail)
        if "error" in outcome:
            error = outcome["error"]
            raise LabCallError(error["type"], error["message"], error["traceback"])
        return outcome["ok"]

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: bool = False,
        stdin: bool = False,
    ) -> Process:
        """Start ``argv`` inside, to run until `Process.stop` or the namespace's close.
        Its standard error goes to a file in `workdir` (`Process.stderr`); with
        ``stdout`` its standard output is a pipe (``process.popen.stdout``); with
        ``stdin`` its standard input is a pipe only this process holds, which closes
        when this process dies, however it dies: a process that exits at the end of
        its input never outlives the test."""
        args = self.command(argv)
        log = self.workdir / f"process-{len(self._processes) + 1}.stderr"
        with log.open("wb") as stderr:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **env} if env else None,
                start_new_session=True,
            )
        process = Process(popen, args, log)
        self._processes.append(process)
        return process

    def run_inside(self, function: Callable[[], T]) -> T:
        """Call ``function()`` in a thread of this process that has entered the
        namespace, and return its result. Sockets it makes live in the namespace for
        good (threads it starts are inside too); files are the machine's own (the
        ``/etc/netns`` files are for processes run with `exec` and the like)."""
        self._check_open()
        outcome: list[Any] = []

        def enter_and_run() -> None:
            try:
                fd = os.open(NETNS_RUN_DIR / self.name, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                outcome.append((True, function()))
            except BaseException as exc:
                outcome.append((False, exc))

        thread = threading.Thread(target=enter_and_run, name=f"{self.name}-inside", daemon=True)
        thread.start()
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def http_server(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> HTTPServer:
        """A `connectbyname.testing.HTTPServer` on ``host:port`` inside, served from this
        process until the namespace closes (``host`` must be an address inside)."""
        server = self.run_inside(lambda: HTTPServer(host, port, ssl_context))
        self._stack.callback(server.close)
        return server

    def blackhole(self, host: str, port: int = 0) -> Blackhole:
        """A `connectbyname.testing.Blackhole` (connects to it hang) on ``host:port``
        inside, until the namespace closes."""
        hole = self.run_inside(lambda: Blackhole(host, port))
        self._stack.callback(hole.close)
        return hole

    def dns_server(self, config: DNSConfig) -> DNSServer:
        """Start a DNS server (`connectbyname.testing.dnsserver`) inside, as ``config``
        says, and wait until it listens."""
        return self.dns_servers([config])[0]

    def dns_servers(self, configs: Sequence[DNSConfig]) -> list[DNSServer]:
        """Start several DNS servers inside at once (faster than one by one)."""
        require_dnspython()
        started = []
        for given in configs:
            number = len(self._processes) + 1
            log = self.workdir / f"dns-{number}.queries.jsonl"
            log.touch()
            config = dataclasses.replace(given, log=str(log))
            path = self.workdir / f"dns-{number}.json"
            path.write_text(json.dumps(config.to_json()), encoding="utf-8")
            argv = [
                sys.executable,
                *("-m", "connectbyname.testing.dnsserver", "--config", str(path)),
                "--exit-with-stdin",  # it never outlives this process, even killed
            ]
            started.append((config, self.spawn(argv, stdout=True, stdin=True)))
        return [DNSServer(config, process, _wait_ready(process)) for config, process in started]


def _wait_ready(process: Process) -> list[tuple[str, int]]:
    """The addresses a starting DNS server listens on, from its ready line."""
    stdout = process.popen.stdout
    assert stdout is not None
    deadline = time.monotonic() + _READY_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
            process.stop()
            raise RuntimeError(f"the DNS server did not start in time: {process.stderr()}")
        chunk = os.read(stdout.fileno(), 4096)
        if not chunk:
            process.stop()
            raise RuntimeError(f"the DNS server exited at start: {process.stderr()}")
        line += chunk
    ready = json.loads(line)
    return [(str(host), int(port)) for host, port in ready["listen"]]


@atexit.register
def _close_all() -> None:
    for namespace in list(_live):
        with contextlib.suppress(Exception):
            namespace.close()


class Lab:
    """A `Namespace` with DNS, resolver files and servers, from a short description (a
    context manager; the pytest fixture ``network_lab`` makes them for a test).

    - ``dns``: what the DNS server answers: ``{name: NameSpec}`` for one server on
      127.0.0.1:53 (``::1`` without IPv4) with ``dns_default`` for other names (see
      `connectbyname.testing.dnsserver.DNSConfig`) and ``dns64``; or a `DNSConfig`, or
      several (each on its own address: ``DNSConfig(host="127.0.0.2", default=DROP)``
      makes a dead first nameserver). ``None``: no DNS server.
    - resolv.conf: ``nameservers`` (default: the DNS servers' addresses, in order),
      ``search`` and ``options`` (``"timeout:1 attempts:2"``), or the whole
      ``resolv_conf`` text. ``hosts``, ``nsswitch``, ``host_conf``, ``etc``: as
      `Namespace` takes them.
    - ``addresses``: more addresses on ``lo``; ``ipv4=False``: IPv6 only.
    - ``http``: addresses with an HTTP server (TLS with ``ssl_context``) on port
      ``port``; ``blackhole``: addresses where connecting to ``port`` hangs. With
      ``port=0`` one free number is picked for all of them: `port`. Server addresses
      that are not on ``lo`` yet are added to it.

    Attributes: ``ns`` (the `Namespace`), ``dns`` (the first `DNSServer`, or ``None``),
    ``dns_servers``, ``port``, ``http`` (``{address: HTTPServer}``), ``blackholes``
    (``{address: Blackhole}``). `call`, `python`, `exec`, `spawn` and `run_inside`
    are the namespace's.

    IPv6-only behind NAT64, without a translator: give the servers' IPv4 addresses to
    DNS (``{"v4only.test": "192.0.2.10"}``), set ``dns64=True`` and ``ipv4=False``, and
    put the servers on the synthesised addresses (``http=[nat64_address("192.0.2.10")]``,
    which lands on ``lo``): a client that resolves the name gets ``64:ff9b::c000:20a``
    and connects to it for real, as it would through a NAT64 gateway.
    """

    def __init__(
        self,
        dns: Mapping[str, NameSpec] | DNSConfig | Sequence[DNSConfig] | None = None,
        *,
        dns_default: Reply | None = None,
        dns64: bool | Sequence[str] = False,
        nameservers: Sequence[str] | None = None,
        search: Sequence[str] = (),
        options: str = "",
        resolv_conf: str | None = None,
        hosts: str = DEFAULT_HOSTS,
        nsswitch: str | None = None,
        host_conf: str | None = None,
        etc: Mapping[str, str] | None = None,
        addresses: Sequence[str] = (),
        ipv4: bool = True,
        http: Sequence[str] = (),
        blackhole: Sequence[str] = (),
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        loopback = "127.0.0.1" if ipv4 else "::1"
        configs: list[DNSConfig]
        if dns is None:
            configs = []
        elif isinstance(dns, DNSConfig):
            configs = [dns]
        elif isinstance(dns, Mapping):
            configs = [DNSConfig(names=dns, host=loopback, dns64=dns64)]
            if dns_default is not None:
                configs[0].default = dns_default
        else:
            configs = list(dns)
        if resolv_conf is None:
            servers = list(nameservers) if nameservers is not None else [c.host for c in configs]
            lines = [f"nameserver {server}" for server in servers or [loopback]]
            if search:
                lines.append(f"search {' '.join(search)}")
            if options:
                lines.append(f"options {options}")
            resolv_conf = "\n".join(lines) + "\n"
        wanted = [*addresses]
        for address in [*http, *blackhole, *(c.host for c in configs)]:
            if not _on_loopback(address) and address not in wanted:
                wanted.append(address)
        self.ns = Namespace(
            resolv_conf=resolv_conf,
            hosts=hosts,
            nsswitch=nsswitch,
            host_conf=host_conf,
            etc=etc,
            addresses=wanted,
            ipv4=ipv4,
        )
        self._configs = configs
        self._http_hosts = list(http)
        self._blackhole_hosts = list(blackhole)
        self.port = port
        self._ssl_context = ssl_context
        self.dns_servers: list[DNSServer] = []
        self.dns: DNSServer | None = None
        self.http: dict[str, HTTPServer] = {}
        self.blackholes: dict[str, Blackhole] = {}

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> Self:
        """Make it all (what entering the context does)."""
        self.ns.open()
        try:
            for dns_server in self.ns.dns_servers(self._configs):
                self.dns_servers.append(dns_server)
                self.ns.on_close(dns_server.stop)
            self.dns = self.dns_servers[0] if self.dns_servers else None
            for host in self._http_hosts:
                server = self.ns.http_server(host, self.port, self._ssl_context)
                self.port = server.port
                self.http[host] = server
            for host in self._blackhole_hosts:
                hole = self.ns.blackhole(host, self.port)
                self.port = hole.port
                self.blackholes[host] = hole
        except BaseException:
            self.ns.close()
            raise
        return self

    def close(self) -> None:
        """Tear it all down (see `Namespace.close`)."""
        self.ns.close()

    @property
    def name(self) -> str:
        """The namespace's name."""
        return self.ns.name

    def url(self, host: str, path: str = "/") -> str:
        """``http://HOST:PORT/PATH`` (``https`` with ``ssl_context``), IPv6 bracketed."""
        scheme = "https" if self._ssl_context is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{self.port}{path}"

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`Namespace.call`."""
        return self.ns.call(function, *args, **kwargs)

    def python(self, code: str, *args: str, **kwargs: Any) -> Result:
        """`Namespace.python`."""
        return self.ns.python(code, *args, **kwargs)

    def exec(self, argv: Sequence[str], **kwargs: Any) -> Result:
        """`Namespace.exec`."""
        return self.ns.exec(argv, **kwargs)

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> Process:
        """`Namespace.spawn`."""
        return self.ns.spawn(argv, **kwargs)

    def run_inside(self, function: Callable[[], T]) -> T:
        """`Namespace.run_inside`."""
        return self.ns.run_inside(function)
