"""The differential test of the engine's own resolver (the issue "Happy Eyeballs v3
part 1", item 5): the engine's answers against glibc's ``getaddrinfo`` over a table of
names and configurations, inside network namespaces: the same addresses, the same
errors.

Each configuration (hosts file, resolv.conf, host.conf, the DNS servers' script, the
environment) is one namespace, and one process inside runs every case of it twice:

- **glibc**: ``socket.getaddrinfo(name, 80, family, SOCK_STREAM)`` (the name as bytes,
  so glibc sees it as written), each case on a thread of its own (glibc keeps resolver
  state per thread), all at once;
- **the engine**: a `connectbyname._dns._resolver.Resolution` per case, as the race
  makes it (AAAA and A for AF_UNSPEC, the one family otherwise), all driven at once by
  the sync driver's poller, and read as the engine's callers read it: the addresses of
  every family, or, when no family has one, the error of the lookup that failed first.

then the DNS server's query log is split between the two phases. Compared per case:
the multiset of addresses (the order is the engine's RFC 6724 against glibc's RFC 3484:
it is reported, not compared), the EAI code when there is no address, and per
configuration the set of queries each side sent, and what the engine left behind. A
case where the resolver differs on purpose (``_dns._resolver``'s docstring) says so
with the reason, and checks what the engine does instead; a disagreement not resolved
yet is listed in `OPEN` (an expected failure, strict). The rows of the glibc notes'
test table (§15) are cited by number. Configurations the engine does not reproduce
(nsswitch.conf other than ``files dns``, gai.conf...) must be refused by it, so that
glibc's ``getaddrinfo`` answers.

A few cases go through the public API too (``connect_by_name`` to a server on the
answered address), and the timing rules of the contract are checked: the second
nameserver's answer after the first's timeout, a silent nameserver ending a call at its
``timeout`` with nothing left behind, and no thread started by the own resolver.

Cost: one module fixture runs every namespace at once (their cases mostly wait on
timeouts), about 25 s on two cores; each test then only reads its results. With
``CBN_DIFFERENTIAL_REPORT=FILE`` set, the table is also written to FILE as markdown.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectbyname.testing import lab as lab_module
from connectbyname.testing import plugin
from connectbyname.testing.dnsserver import (
    DROP,
    NODATA,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    DNSConfig,
    Reply,
)
from connectbyname.testing.lab import Lab

FAMILIES = {"U": socket.AF_UNSPEC, "4": socket.AF_INET, "6": socket.AF_INET6}
PORT = 80

# --------------------------------------------------------------------------- probes
# Module-level functions: `Namespace.call` runs them inside by reference. JSON in and
# out: a case is [label, name, family letter, prelude name or None].


def _gai(name: str, family: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        infos = socket.getaddrinfo(name.encode(), PORT, FAMILIES[family], socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return {"error": exc.errno, "elapsed": time.monotonic() - started}
    return {"addresses": [info[4][0] for info in infos], "elapsed": time.monotonic() - started}


def glibc_side(cases: list[list[Any]], hang_after: float) -> dict[str, Any]:
    """Every case through glibc, each on a thread of its own, all at once. A prelude is
    looked up first on the same thread (glibc's state per thread). A case still
    running ``hang_after`` seconds after the start is reported as hanging (its thread
    is left behind: the process ends with ``os._exit``)."""
    results: dict[str, Any] = {}

    def run(label: str, name: str, family: str, prelude: str | None) -> None:
        if prelude:
            _gai(prelude, family)
        results[label] = _gai(name, family)

    threads = [threading.Thread(target=run, args=case, daemon=True) for case in cases]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread, case in zip(threads, cases, strict=True):
        thread.join(max(0.0, started + hang_after - time.monotonic()))
        if thread.is_alive():
            results[case[0]] = {"hang": True, "elapsed": time.monotonic() - started}
    return results


def _task_children() -> list[str]:
    children: list[str] = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as file:
                children += file.read().split()
        except OSError:
            pass
    return children


def engine_side(cases: list[list[Any]], hang_after: float = 10.0) -> dict[str, Any]:
    """Every case through the engine's own resolver, all at once in one poll loop (the
    sync driver's poller, the race's socket layer); and what was left afterwards. A
    case still running ``hang_after`` seconds after the start is closed and reported
    as hanging."""
    from connectbyname._dns import _config, _resolver, _sort
    from connectbyname._race import NET
    from connectbyname._resolve import Lookup
    from connectbyname._sync import PollPoller

    config = _config.load()
    if isinstance(config, _config.Unsupported):
        return {"unsupported": list(config.reasons)}
    _resolver.clear_cache()
    fds_before = sorted(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    tasks_before = len(os.listdir("/proc/self/task"))
    poller = PollPoller(time.monotonic)
    started = time.monotonic()
    running: dict[str, _resolver.Resolution] = {}
    results: dict[str, Any] = {}
    reported: dict[str, list[Lookup]] = {}
    for label, name, family, _prelude in cases:
        families = (socket.AF_INET6, socket.AF_INET) if family == "U" else (FAMILIES[family],)
        resolution = _resolver.Resolution(config, name, PORT, families, NET.socket)
        running[label] = resolution
        reported[label] = []
        results[label] = {"families": {}, "addresses": [], "error": None}
        resolution.start(time.monotonic())

    def report(label: str, resolution: _resolver.Resolution, now: float) -> None:
        # As the race's _report_lookups: after each step, in the lookups' order.
        result = results[label]
        for lookup in resolution.lookups.values():
            if lookup.done() and lookup not in reported[label]:
                reported[label].append(lookup)
                letter = {socket.AF_INET6: "6", socket.AF_INET: "4"}[lookup.family]
                entry: dict[str, Any] = {"elapsed": now - started}
                if lookup.error is not None:
                    entry["error"] = lookup.error.errno
                    if result["error"] is None:
                        result["error"] = lookup.error.errno
                else:
                    entry["addresses"] = [c.address[0] for c in lookup.candidates]
                result["families"][letter] = entry

    while running:
        now = time.monotonic()
        for label, resolution in list(running.items()):
            report(label, resolution, now)
            if all(lookup.done() for lookup in resolution.lookups.values()):
                resolution.close(poller.discard)
                del running[label]
        if not running:
            break
        if now - started > hang_after:
            for label, resolution in running.items():
                resolution.close(poller.discard)
                results[label]["hang"] = True
            break
        timers = [started + hang_after]
        for resolution in running.values():
            resolution.watch(poller.register)
            timer = resolution.timer()
            if timer is not None:
                timers.append(timer)
        events = poller.wait(min(timers))
        now = time.monotonic()
        for fd, _ in events:
            for resolution in running.values():
                if resolution.owns(fd):
                    resolution.on_ready(fd, now, poller.discard)
                    break
        for resolution in running.values():
            resolution.on_time(now, poller.discard)
    poller.close()
    for result in results.values():
        candidates = []
        for letter in ("6", "4"):
            entry = result["families"].get(letter, {})
            for address in entry.get("addresses", ()):
                family = socket.AF_INET6 if letter == "6" else socket.AF_INET
                candidates.append(_resolver._candidate(family, address, PORT))
        result["addresses"] = [c.address[0] for c in candidates]
        result["order"] = [c.address[0] for c in _sort.sort_destinations(candidates)]
        result["elapsed"] = max(
            (entry["elapsed"] for entry in result["families"].values()), default=0.0
        )
    return {
        "results": results,
        "leaks": {
            "fds": sorted(set(os.listdir("/proc/self/fd")) - set(fds_before)),
            "threads": threading.active_count() - threads_before,
            "tasks": len(os.listdir("/proc/self/task")) - tasks_before,
            "children": _task_children(),
        },
    }


def probe(cases: list[list[Any]], hang_after: float) -> dict[str, Any]:
    """glibc's phase, then the engine's (for the query log, the times of each)."""
    glibc_started = time.monotonic()
    glibc = glibc_side(cases, hang_after)
    engine_started = time.monotonic()
    engine = engine_side(cases, hang_after)
    return {
        "glibc": glibc,
        "engine": engine,
        "phases": [glibc_started, engine_started, time.monotonic()],
    }


def api_side(port: int, checks: list[list[Any]]) -> dict[str, Any]:
    """Each ``[label, name, family, timeout]`` through glibc, then through
    ``connect_by_name`` (the whole path: the race and the own resolver): where it
    connected or how it failed, how long it took, and what it left behind: threads
    started during the call (`threading.Thread.start` is watched), descriptors and
    child processes."""
    import connectbyname
    from connectbyname import ConnectByNameError

    started_threads: list[str] = []
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started_threads.append(self.name)
        original_start(self)

    threading.Thread.start = start  # type: ignore[method-assign]
    results: dict[str, Any] = {}
    try:
        for label, name, family, timeout in checks:
            glibc = _gai(name, family)
            fds = set(os.listdir("/proc/self/fd"))
            threads = threading.active_count()
            started_threads.clear()
            started = time.monotonic()
            engine: dict[str, Any]
            try:
                with connectbyname.connect_by_name(
                    name, port, timeout=timeout, family=FAMILIES[family], history=False
                ) as connection:
                    engine = {"remote": connection.remote_address[0]}
            except ConnectByNameError as exc:
                engine = {"error": type(exc).__name__, "errno": exc.errno}
            engine.update(
                elapsed=time.monotonic() - started,
                threads_started=list(started_threads),
                threads_delta=threading.active_count() - threads,
                fds_left=sorted(set(os.listdir("/proc/self/fd")) - fds),
                children=_task_children(),
                threads_alive=[thread.name for thread in threading.enumerate()],
            )
            results[label] = {"glibc": glibc, "engine": engine}
    finally:
        threading.Thread.start = original_start  # type: ignore[method-assign]
    return results


def rotate_side(name: str, count: int) -> dict[str, Any]:
    """``name`` (AF_INET) looked up ``count`` times in a row by glibc and by the engine
    (its cache cleared before each: caching is a documented difference)."""
    from connectbyname._dns import _resolver

    glibc = [_gai(name, "4").get("addresses") for _ in range(count)]
    engine = []
    for _ in range(count):
        _resolver.clear_cache()
        result = engine_side([["x", name, "4", None]])["results"]["x"]
        engine.append(result["addresses"])
    return {"glibc": glibc, "engine": engine}


# --------------------------------------------------------------------------- the table

EAI_NONAME, EAI_AGAIN, EAI_NODATA = socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_NODATA
EAI_ADDRFAMILY = socket.EAI_ADDRFAMILY
ERROR_NAMES = {
    code: name
    for name in (
        "EAI_NONAME",
        "EAI_AGAIN",
        "EAI_NODATA",
        "EAI_ADDRFAMILY",
        "EAI_SYSTEM",
        "EAI_FAIL",
    )
    if (code := getattr(socket, name, None)) is not None
}


@dataclass(frozen=True)
class Differs:
    """A documented difference (``_dns._resolver``'s docstring): why, and the check of
    what the engine does instead, ``check(glibc_result, engine_result)``."""

    reason: str
    check: Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    row: str = ""
    prelude: str | None = None
    differs: Differs | None = None
    #: glibc's answer depends on the caller's errno (notes §9b): either code is glibc's.
    errno_dependent: bool = False

    @property
    def label(self) -> str:
        label = f"{self.name}/{self.family}"
        return f"{label} after {self.prelude}" if self.prelude else label


def cases(name: str, families: str, row: str = "", **options: Any) -> list[Case]:
    return [Case(name, family, row, **options) for family in families]


@dataclass(frozen=True)
class Config:
    """One namespace's configuration (``lab``: `Lab`'s arguments) and its cases; configs
    with the same ``namespace`` share one (e.g. the same files, another environment)."""

    key: str
    title: str
    cases: Sequence[Case]
    lab: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = ""
    env: Mapping[str, str] | None = None
    #: Addresses on a second interface (a dummy one), with default routes through it.
    interface: tuple[str, ...] = ()
    #: A case still running after this long (from the start) is reported as hanging.
    hang_after: float = 10.0
    #: A configuration the engine does not reproduce (and leaves to glibc's
    #: getaddrinfo): a word of the reason it must give.
    fallback: str | None = None
    #: Queries one side may send and the other not: (who, reason, predicate).
    query_differences: tuple[tuple[str, str, Callable[[tuple[str, ...]], bool]], ...] = ()

    @property
    def home(self) -> str:
        return self.namespace or self.key


# The checks of the documented differences ------------------------------------------


def _addresses(result: dict[str, Any]) -> list[str]:
    return sorted(result.get("addresses") or [])


#: "At once": the answered family is handed to the race this much before the dropped
#: one's lookup gives up (after its two tries of 1 s: at 2 s), where a resolver that
#: waits for both would hand the two over together. Not a bound on its own time: every
#: case of a table starts together, and the engine's times include how long the lab
#: server (one process, one datagram per turn of its loop) takes to get through that
#: burst: 0.46 s for an answer sent at once on an idle 2-core machine, 0.52 s in a run of
#: the version matrix on a slow one. Both cases failed once (and passed on their rerun)
#: in a loaded CI run when this was a bound of 0.9 s on the answered family's time.
AT_ONCE = 0.5


def _family_elapsed(engine: dict[str, Any], letter: str) -> float:
    return float(engine["families"][letter]["elapsed"])


def _handed_at_once(engine: dict[str, Any], answered: str, dropped: str) -> None:
    assert _family_elapsed(engine, answered) + AT_ONCE < _family_elapsed(engine, dropped)


def a_at_once(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """AAAA dropped: glibc returns A after 3 timeouts (1 s each, retrying the same
    server one query at a time); the engine hands A to the race at once."""
    assert _addresses(engine) == _addresses(glibc) != []
    assert glibc["elapsed"] >= 2.9
    _handed_at_once(engine, "4", "6")


def aaaa_at_once(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """A dropped, AAAA answered: glibc fails (EAI_AGAIN, as the A query goes first in
    its one-at-a-time retry and times out); the engine hands AAAA to the race at once."""
    assert glibc.get("error") == EAI_AGAIN
    assert _addresses(engine) == ["2001:db8::24"]
    _handed_at_once(engine, "6", "4")


def aaaa_nxdomain_stands(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """A dropped, AAAA NXDOMAIN: glibc fails with EAI_AGAIN (as with row 24); the
    engine takes the AAAA reply's word that the name does not exist."""
    assert glibc.get("error") == EAI_AGAIN
    assert engine["error"] == EAI_NONAME


def tcp_bounded(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """Truncated, then a TCP server that never answers: glibc waits without limit; the
    engine ends the server's turn at its UDP timeout (1 s) and fails."""
    assert glibc.get("hang")
    assert engine["error"] == EAI_AGAIN
    assert engine["elapsed"] < 2.5


def tcp_next_server(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """use-vc, the first server accepts TCP and never answers: glibc waits without
    limit; the engine asks the second server after the first's 1 s."""
    assert glibc.get("hang")
    assert _addresses(engine) == sorted(LOOPBACK_ANSWER)
    assert 0.9 <= engine["elapsed"] < 2.5


def not_sticky(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """After a lookup whose AAAA timed out, glibc asks one query at a time on that
    thread for good (A, then AAAA: 0.4 + 0.4 s, close to its 1 s for both: the AAAA
    answer may come too late); the engine asks both at once, which
    test_no_sticky_single_request_mode checks on the times the server received them.
    Not the engine's elapsed time against glibc's: it includes the lab server's burst
    (see `AT_ONCE`), and came to 0.81 s against glibc's 0.80 on a slow machine while the
    two queries still left together."""
    assert _addresses(engine) == ["192.0.2.72", "2001:db8::72"]
    assert set(_addresses(glibc)) <= set(_addresses(engine))
    assert glibc["elapsed"] >= 0.75


def servfail_a_alone(glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """``options single-request``: glibc asks A first and fails (EAI_AGAIN) on its
    SERVFAIL without asking AAAA; the engine asks both at once, as without the option,
    and the AAAA outcome stands on its own (here: NODATA, or its address)."""
    assert glibc.get("error") == EAI_AGAIN
    if engine["addresses"]:
        assert _addresses(engine) == ["2001:db8::28"]
    else:
        assert engine["error"] == EAI_NODATA


PER_FAMILY = (
    "per-family independence: each record type keeps its own schedule and its answer "
    "goes to the race as it comes"
)
D_AAAA_DROPPED = Differs(PER_FAMILY + " (no 3 x timeout wait for a dropped AAAA)", a_at_once)
D_A_DROPPED = Differs(PER_FAMILY + " (no EAI_AGAIN when only A times out)", aaaa_at_once)
D_A_DROPPED_NX = Differs(PER_FAMILY + " (no EAI_AGAIN when only A times out)", aaaa_nxdomain_stands)
D_TCP = Differs("TCP bounded: a server's turn ends over TCP too", tcp_bounded)
D_TCP_NEXT = Differs("TCP bounded: a server's turn ends over TCP too", tcp_next_server)
D_STICKY = Differs("no sticky single-request mode after a timeout", not_sticky)
D_SINGLE = Differs(
    PER_FAMILY + " (options single-request(-reopen) change only how glibc sends)",
    servfail_a_alone,
)

# The configurations ----------------------------------------------------------------

BASE_HOSTS = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "10.0.0.1 v4only.test v4alias\n"
    "  10.0.0.2 three.test\n"
    "10.0.0.3 three.test\n"
    "10.0.0.31 three.test\n"
    "10.0.0.4 dual.test\n"
    "2001:db8::4 dual.test\n"
    "10.0.0.5 dup.test\n"
    "10.0.0.5 dup.test\n"
    "10.0.0.6 trail.test.\n"
    "10.0.0.9 hash#inname.test\n"
    "127.1 short.test\n"
    "010.0.0.1 octal.test\n"
    "fe80::1%lo zone.test\n"
    "::ffff:10.0.0.7 mapped.test\n"
    "10.0.0.11 -dash.test\n"
    "  10.0.0.8 foo"  # the last line, unterminated: glibc reads "foooo" (notes §2)
)
LAME = Reply(authoritative=False, recursion_available=False, soa=False)
BASE_DNS: dict[str, Any] = {
    "localhost": ["192.0.2.99", "2001:db8::99"],
    "v4only.test": {"AAAA": "2001:db8:ffff::1"},
    "aonly.test": "192.0.2.1",
    "aaaaonly.test": "2001:db8::2",
    "ok.test": ["192.0.2.3", "2001:db8::3"],
    "api.test": ["127.0.0.1", "::1"],
    "api4.test": "127.0.0.1",
    "api6.test": "::1",
    "nodata.test": NODATA,
    "sf.test": SERVFAIL,
    "ref.test": REFUSED,
    "bare-refused.test": Reply(rcode="REFUSED", header_only=True),
    "notimp.test": Reply(rcode="NOTIMP"),
    "formerr.test": Reply(rcode="FORMERR"),
    "lame.test": LAME,
    "a-ok-aaaa-sf.test": {"A": "192.0.2.20", "AAAA": SERVFAIL},
    "a-nx-aaaa-ok.test": {"A": NXDOMAIN, "AAAA": "2001:db8::25"},
    "a-nodata-aaaa-nx.test": {"A": NODATA, "AAAA": NXDOMAIN},
    "a-nx-aaaa-nodata.test": {"A": NXDOMAIN, "AAAA": NODATA},
    "a-sf-aaaa-nodata.test": {"A": SERVFAIL, "AAAA": NODATA},
    "a-sf-aaaa-ok.test": {"A": SERVFAIL, "AAAA": "2001:db8::28"},
    "a-ref-aaaa-ok.test": {"A": REFUSED, "AAAA": "2001:db8::29"},
    "a-formerr-aaaa-ok.test": {"A": Reply(rcode="FORMERR"), "AAAA": "2001:db8::30"},
    "a-lame-aaaa-ok.test": {"A": LAME, "AAAA": "2001:db8::31"},
    "a-nx-aaaa-sf.test": {"A": NXDOMAIN, "AAAA": SERVFAIL},
    "a-drop-aaaa-nx.test": {"A": DROP, "AAAA": NXDOMAIN},
    "a-nx-aaaa-drop.test": {"A": NXDOMAIN, "AAAA": DROP},
    "tc.test": {
        "A": Reply(["192.0.2.4", "192.0.2.5"], truncate="partial"),
        "AAAA": Reply("2001:db8::4", truncate=True),
    },
    "tc-silent.test": {"A": Reply("192.0.2.31", truncate=True, drop="tcp")},
    "c1.test": {"CNAME": "c2.test."},
    "c2.test": {"CNAME": "c3.test."},
    "c3.test": ["192.0.2.6", "2001:db8::6"],
    "conly.test": {"CNAME": "nowhere.test."},
    "conly-a.test": {"CNAME": "nowhere.test.", "AAAA": NODATA},
    "owner.test": {
        "A": Reply("192.0.2.53", owner="other.test"),
        "AAAA": Reply("2001:db8::53", owner="other.test"),
    },
    "owner-a.test": {"A": Reply("192.0.2.53", owner="other.test"), "AAAA": "2001:db8::56"},
    "under_score.test": "192.0.2.54",
    "dropped.test": DROP,
    "a-ok-aaaa-drop.test": {"A": "192.0.2.23", "AAAA": DROP},
    "a-drop-aaaa-ok.test": {"A": DROP, "AAAA": "2001:db8::24"},
    "wrong-id.test": Reply(["192.0.2.7"], delay=0.1, stray=("wrong-id", "junk")),
    "other-port.test": Reply(["192.0.2.8"], delay=0.1, stray=("other-port",)),
    "stray-only.test": Reply(["192.0.2.9"], drop=True, stray=("wrong-question",)),
    "short-stray.test": Reply(["192.0.2.10"], delay=0.1, stray=("short",)),
    "1.2.3.4.5": "192.0.2.55",
    "slow.test": {"A": Reply("192.0.2.72", delay=0.4), "AAAA": Reply("2001:db8::72", delay=0.4)},
    # Over 512 octets: TC=1 and TCP for both sides (neither sends EDNS0 here).
    "big.test": {
        "A": [f"192.0.2.{n}" for n in range(100, 140)],
        "AAAA": [f"2001:db8::{n:x}" for n in range(100, 130)],
    },
    "tc-refused.test": Reply(rcode="REFUSED", truncate=True),
    "tc-servfail.test": Reply(rcode="SERVFAIL", truncate=True),
    # Over 1232 octets: TC=1 and TCP for both sides.
    "huge.test": {"A": [f"192.0.2.{n}" for n in range(1, 101)]},
    "nx-with-a.test": {
        "A": Reply("192.0.2.60", rcode="NXDOMAIN"),
        "AAAA": Reply("2001:db8::60", rcode="NXDOMAIN"),
    },
    "nx-cname.test": {"CNAME": Reply("nowhere.test.", rcode="NXDOMAIN")},
    "a-nxrec-aaaa-ok.test": {"A": Reply("192.0.2.61", rcode="NXDOMAIN"), "AAAA": "2001:db8::61"},
}

BASE = Config(
    "base",
    "hosts file rows, one nameserver (timeout:1 attempts:2), every kind of answer",
    [
        *cases("localhost", "U46", "1, 2"),
        *cases("LOCALHOST", "U", "5"),
        *cases("ip6-localhost", "4U", "6"),
        *cases("localhost.", "U", "4"),
        *cases("v4only.test", "6U4", "7"),
        *cases("v4alias", "6", "8"),
        *cases("three.test", "U4", "9"),
        *cases("dual.test", "U46", "10"),
        *cases("dup.test", "U", "11"),
        *cases("trail.test", "U", "12"),
        *cases("trail.test.", "U", "12"),
        *cases("hash", "U", "13"),
        *cases("foooo", "4U", "14"),
        *cases("foo", "4", "14"),
        *cases("short.test", "U", "15"),
        *cases("octal.test", "U", "15"),
        *cases("zone.test", "U", "15"),
        *cases("mapped.test", "U46", "§2"),
        *cases("-dash.test", "U4", "§2"),
        *cases("aonly.test", "U46", "19"),
        *cases("aaaaonly.test", "U46"),
        *cases("ok.test", "U46"),
        *cases("nodata.test", "U46", "17"),
        *cases("nx.test", "U46"),
        *cases("sf.test", "U46", "21"),
        *cases("ref.test", "U46", "21"),
        *cases("bare-refused.test", "U", "21"),
        *cases("notimp.test", "U", "21"),
        *cases("formerr.test", "U46", "29"),
        *cases("lame.test", "U4", "18"),
        *cases("a-ok-aaaa-sf.test", "U6", "20"),
        *cases("a-nx-aaaa-ok.test", "U", "25"),
        *cases("a-nodata-aaaa-nx.test", "U", "26"),
        *cases("a-nx-aaaa-nodata.test", "U", "26"),
        *cases("a-sf-aaaa-nodata.test", "U", "27"),
        *cases("a-sf-aaaa-ok.test", "U", "28"),
        *cases("a-ref-aaaa-ok.test", "U", "§9"),
        *cases("a-formerr-aaaa-ok.test", "U", "§9"),
        *cases("a-lame-aaaa-ok.test", "U", "§5"),
        *cases("a-nx-aaaa-sf.test", "U", "§9"),
        Case("a-drop-aaaa-nx.test", "U", "§9", differs=D_A_DROPPED_NX),
        *cases("a-nx-aaaa-drop.test", "U", "§9"),
        *cases("tc.test", "U", "30"),
        *cases("big.test", "U46", "§5"),
        *cases("huge.test", "U4", "30"),
        *cases("tc-refused.test", "U", "§5"),
        *cases("tc-servfail.test", "4", "§5"),
        *cases("nx-with-a.test", "U46", "§6"),
        *cases("nx-cname.test", "U4", "§6"),
        *cases("a-nxrec-aaaa-ok.test", "U", "§8"),
        Case("tc-silent.test", "4", "31", differs=D_TCP),
        *cases("c1.test", "U46", "51"),
        *cases("conly.test", "U46", "52"),
        *cases("conly-a.test", "U", "52"),
        *cases("owner.test", "U46", "53"),
        *cases("owner-a.test", "U", "53"),
        *cases("-lead.test", "U4", "54"),
        *cases("under_score.test", "U", "54"),
        *cases("dropped.test", "U", "22"),
        Case("a-ok-aaaa-drop.test", "U", "23", differs=D_AAAA_DROPPED),
        Case("a-drop-aaaa-ok.test", "U", "24", differs=D_A_DROPPED),
        *cases("wrong-id.test", "4", "32"),
        *cases("other-port.test", "4", "32"),
        *cases("stray-only.test", "4", "32"),
        *cases("short-stray.test", "4", "§5"),
        *cases("1.2.3.4.5", "U46", "55"),
        *cases("1.2.3.4.5.", "4", "55"),
        *cases("999.1.1.1", "4U", "55"),
        *cases("123", "U46", "56"),
        *cases("127.1", "U46", "56"),
        *cases("0x7f.1", "U4", "56"),
        *cases("OK.TEST", "U", "case"),
        *cases("ok.test.", "U", "trailing dot"),
        *cases("Ok.Test.", "6", "case"),
        Case("slow.test", "U", "72", prelude="a-ok-aaaa-drop.test", differs=D_STICKY),
    ],
    lab={
        "dns": BASE_DNS,
        "hosts": BASE_HOSTS,
        "options": "timeout:1 attempts:2",
        "http": ["127.0.0.1", "::1"],
    },
    hang_after=5.0,
    query_differences=(
        (
            "glibc",
            PER_FAMILY + ": glibc asks both types again over TCP when one is truncated",
            lambda query: query[1:] == ("huge.test.", "AAAA", "tcp"),
        ),
    ),
)

SEARCH_DNS: dict[str, Any] = {
    "host.a.example": "192.0.2.1",
    "ref.a.example": REFUSED,
    "sf.a.example": SERVFAIL,
    "sf.b.example": "192.0.2.5",
    "x.y.b.example": "192.0.2.9",
    "x.y": "192.0.2.10",
    "nd.a.example": NODATA,
    "ok": "192.0.2.77",
}
SEARCH_LAB = {"dns": SEARCH_DNS, "search": ["a.example", "b.example"]}
SEARCH = [
    Config(
        "search",
        "search a.example b.example",
        [
            *cases("host", "4U", "38"),
            *cases("nx", "4U", "39"),
            *cases("nx.z", "4U", "40"),
            *cases("ref", "4U", "41"),
            *cases("sf", "4U", "42"),
            *cases("x.y", "4U", "ndots"),
            *cases("nd", "U46", "§7"),
            *cases("host.a.example", "U", "§7"),
            *cases("ok", "4", "§7"),
            *cases("host.", "4", "§7"),
        ],
        lab=SEARCH_LAB,
    ),
    Config(
        "search+ndots2",
        "search a.example b.example, RES_OPTIONS=ndots:2",
        [*cases("x.y", "4U", "ndots"), *cases("host", "4", "38")],
        namespace="search",
        env={"RES_OPTIONS": "ndots:2"},
    ),
    Config(
        "search+LOCALDOMAIN=",
        'search a.example b.example, LOCALDOMAIN="" (root only)',
        [*cases("ok", "4U", "50"), *cases("host", "4", "50")],
        namespace="search",
        env={"LOCALDOMAIN": ""},
    ),
    Config(
        "search+LOCALDOMAIN=b",
        "search a.example b.example, LOCALDOMAIN=b.example",
        [*cases("sf", "4", "§4"), *cases("host", "4U", "§4")],
        namespace="search",
        env={"LOCALDOMAIN": "b.example"},
    ),
    Config(
        "search-root",
        "search . b.example",
        [*cases("host", "4U", "44"), *cases("only-root", "U", "44")],
        lab={
            "dns": {"host.b.example": "192.0.2.1", "only-root": "192.0.2.2"},
            "search": [".", "b.example"],
        },
    ),
    Config(
        "no-tld-query",
        "search a.example b.example, options no-tld-query",
        [*cases("tld", "4U", "43"), *cases("tld.x", "4", "43")],
        lab={
            "dns": {"tld": "192.0.2.90", "tld.x": "192.0.2.91"},
            "search": ["a.example", "b.example"],
            "options": "no-tld-query",
        },
    ),
    Config(
        "domain",
        "resolv.conf: domain a.example",
        [*cases("host", "4U", "§4")],
        lab={
            "dns": {"host.a.example": "192.0.2.1"},
            "resolv_conf": "nameserver 127.0.0.1\ndomain a.example\n",
        },
    ),
]

# Rows 45 and 46: the name as is (one dot, ndots:1: asked first) gets X, the name with
# the search suffix gets Y; every pair, for each family.
OUTCOMES: dict[str, Any] = {
    "ok": ["192.0.2.1", "2001:db8::1"],
    "nx": NXDOMAIN,
    "nd": NODATA,
    "sf": SERVFAIL,
    "rf": REFUSED,
    "to": DROP,
    "fe": Reply(rcode="FORMERR"),
}
MATRIX_DNS = {
    name: OUTCOMES[outcome]
    for first in OUTCOMES
    if first != "ok"
    for then in OUTCOMES
    for name, outcome in ((f"{first}-{then}.t", first), (f"{first}-{then}.t.sfx", then))
}
# AF_INET, the last query failed (no reply) and the walk's h_errno is not TRY_AGAIN:
# glibc returns the caller's errno through getaddrinfo (EAI_NONAME if it was 0, else
# EAI_NODATA): notes §9b.
ERRNO_DEPENDENT = {f"{first}-{then}.t" for first in ("nx", "fe") for then in ("sf", "rf", "to")}
MATRIX = Config(
    "matrix",
    "search sfx, timeout:1 attempts:1: the name as is, then with the suffix",
    [
        Case(
            name,
            family,
            "45" if family != "4" else "46",
            errno_dependent=family == "4" and name in ERRNO_DEPENDENT,
        )
        for name in MATRIX_DNS
        if not name.endswith(".sfx")
        for family in "U46"
    ],
    lab={"dns": MATRIX_DNS, "search": ["sfx"], "options": "timeout:1 attempts:1"},
    hang_after=5.0,
)

LOOPBACK_ANSWER = ["127.0.0.1", "::1"]
SECOND_SERVER_NAMES = (
    "ok.test", "sf-first.test", "nx-first.test", "lame-first.test", "ref-first.test"
)  # fmt: skip
SERVERS = [
    Config(
        "two-servers",
        "the first nameserver silent (or failing), the second answering; timeout:1",
        [
            *cases("ok.test", "U46", "34"),
            *cases("sf-first.test", "U", "36"),
            *cases("nx-first.test", "U", "35"),
            *cases("lame-first.test", "U", "18"),
            *cases("ref-first.test", "U", "21"),
        ],
        lab={
            "dns": [
                DNSConfig(
                    host="127.0.0.2",
                    default=DROP,
                    names={
                        "sf-first.test": SERVFAIL,
                        "nx-first.test": NXDOMAIN,
                        "lame-first.test": LAME,
                        "ref-first.test": REFUSED,
                    },
                ),
                DNSConfig(
                    host="127.0.0.3",
                    names=dict.fromkeys(SECOND_SERVER_NAMES, LOOPBACK_ANSWER),
                ),
            ],
            "options": "timeout:1",
            "http": ["127.0.0.1", "::1"],
        },
    ),
    Config(
        "tc-then-tcp-closed",
        "the first server truncates and closes TCP connections, the second answers; timeout:1",
        [*cases("ok.test", "U4", "30")],
        lab={
            "dns": [
                DNSConfig(
                    host="127.0.0.2",
                    names={"ok.test": Reply(truncate=True, drop="tcp-close")},
                ),
                DNSConfig(host="127.0.0.3", names={"ok.test": LOOPBACK_ANSWER}),
            ],
            "options": "timeout:1",
        },
        query_differences=(
            (
                "engine",
                "a TCP connection per type: the server closed glibc's one on its first query",
                lambda query: query[0] == "127.0.0.2:53" and query[2:] == ("AAAA", "tcp"),
            ),
        ),
    ),
    Config(
        "tc-then-tcp-silent",
        "the first server truncates and never answers over TCP, the second answers; timeout:1",
        [Case("ok.test", "U", "31", differs=D_TCP_NEXT)],
        lab={
            "dns": [
                DNSConfig(host="127.0.0.2", names={"ok.test": Reply(truncate=True, drop="tcp")}),
                DNSConfig(host="127.0.0.3", names={"ok.test": LOOPBACK_ANSWER}),
            ],
            "options": "timeout:1",
        },
        hang_after=3.0,
        query_differences=(
            (
                "engine",
                "glibc waits for the first server for good",
                lambda query: query[0] == "127.0.0.3:53",
            ),
        ),
    ),
    Config(
        "refused-first",
        "the first nameserver's port closed (ICMP), the second answering",
        [*cases("ok.test", "U", "37")],
        lab={
            "dns": [DNSConfig(host="127.0.0.3", names={"ok.test": LOOPBACK_ANSWER})],
            "nameservers": ["127.0.0.4", "127.0.0.3"],
        },
    ),
    Config(
        "unreachable",
        "no nameserver reachable: a closed port, and an address with no route",
        [*cases("ok.test", "U4", "37"), *cases("localhost", "U", "1")],
        lab={"dns": None, "nameservers": ["127.0.0.4", "192.0.2.200"]},
    ),
    Config(
        "silent",
        "four silent nameservers (only three are used), timeout:1 attempts:1",
        [*cases("ok.test", "U4", "33")],
        lab={
            "dns": [
                DNSConfig(
                    host="127.0.0.2",
                    extra_listen=[("127.0.0.3", 53), ("127.0.0.4", 53), ("127.0.0.5", 53)],
                    default=DROP,
                )
            ],
            "nameservers": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"],
            "options": "timeout:1 attempts:1",
        },
    ),
]

BOTH = ["192.0.2.1", "2001:db8::1"]
OPTIONS = [
    Config(
        "attempts0",
        "options attempts:0 (nothing is sent), search a.example",
        [*cases("ok.test", "U46", "48"), *cases("nosuch", "U", "48"), *cases("localhost", "U")],
        lab={"dns": {"ok.test": BOTH}, "options": "attempts:0", "search": ["a.example"]},
    ),
    Config(
        "no-aaaa",
        "options no-aaaa",
        [
            *cases("ok.test", "U46", "47"),
            *cases("nx.test", "6U", "47"),
            *cases("aonly.test", "6U", "47"),
            *cases("aaaaonly.test", "U6", "47"),
            *cases("sf.test", "6", "47"),
            *cases("localhost", "U6", "47"),
        ],
        lab={
            "dns": {
                "ok.test": BOTH,
                "aonly.test": "192.0.2.2",
                "aaaaonly.test": "2001:db8::3",
                "sf.test": SERVFAIL,
            },
            "options": "no-aaaa",
        },
    ),
    Config(
        "multi-off",
        "host.conf: multi off",
        [
            *cases("localhost", "U46", "3"),
            *cases("dual.test", "U46", "10"),
            *cases("dup.test", "U", "11"),
            *cases("three.test", "U4", "9"),
            *cases("v6first.test", "U46", "§2"),
            *cases("ok.test", "U"),
        ],
        lab={
            "dns": {"ok.test": [*BOTH, "192.0.2.11"]},
            "host_conf": "multi off\n",
            "hosts": (
                "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
                "10.0.0.4 dual.test\n2001:db8::4 dual.test\n"
                "10.0.0.5 dup.test\n10.0.0.5 dup.test\n"
                "10.0.0.2 three.test\n10.0.0.3 three.test\n"
                "2001:db8::5 v6first.test\n10.0.0.6 v6first.test\n"
            ),
        },
    ),
    Config(
        "empty",
        "resolv.conf without a nameserver (127.0.0.1 then), an empty hosts file",
        [*cases("localhost", "U", "16"), *cases("ok.test", "U", "49")],
        lab={"dns": {"ok.test": BOTH}, "resolv_conf": "options timeout:1\n", "hosts": ""},
    ),
    Config(
        "use-vc",
        "options use-vc (every query over TCP), timeout:1",
        [
            *cases("ok.test", "U", "§5"),
            *cases("udp-dropped.test", "U4", "§5"),
            *cases("ref.test", "U4", "§5"),
            *cases("sf.test", "U4", "§5"),
            *cases("notimp.test", "U", "§5"),
            *cases("lame.test", "U", "§5"),
            *cases("nx.test", "U", "§5"),
            *cases("nodata.test", "U", "§5"),
        ],
        lab={
            "dns": {
                "ok.test": BOTH,
                "ref.test": REFUSED,
                "sf.test": SERVFAIL,
                "notimp.test": Reply(rcode="NOTIMP"),
                "lame.test": LAME,
                "nodata.test": NODATA,
                "udp-dropped.test": {
                    "A": Reply("192.0.2.2", drop="udp"),
                    "AAAA": Reply("2001:db8::2", drop="udp"),
                },
            },
            "options": "use-vc timeout:1",
        },
    ),
    Config(
        "use-vc-silent-first",
        "options use-vc timeout:1, the first server silent over TCP",
        [Case("ok.test", "U", "31", differs=D_TCP_NEXT)],
        lab={
            "dns": [
                DNSConfig(host="127.0.0.2", default=DROP),
                DNSConfig(host="127.0.0.3", names={"ok.test": LOOPBACK_ANSWER}),
            ],
            "options": "use-vc timeout:1",
        },
        hang_after=3.0,
        query_differences=(
            (
                "engine",
                "glibc waits for the first server for good",
                lambda query: query[0] == "127.0.0.3:53",
            ),
        ),
    ),
    Config(
        "single-request",
        "options single-request, timeout:1",
        [
            Case("a-sf-aaaa-nodata.test", "U", "27", differs=D_SINGLE),
            Case("a-sf-aaaa-ok.test", "U", "28", differs=D_SINGLE),
            *cases("ok.test", "U"),
        ],
        lab={
            "dns": {
                "a-sf-aaaa-nodata.test": {"A": SERVFAIL, "AAAA": NODATA},
                "a-sf-aaaa-ok.test": {"A": SERVFAIL, "AAAA": "2001:db8::28"},
                "ok.test": BOTH,
            },
            "options": "single-request timeout:1",
        },
        query_differences=(
            (
                "engine",
                "glibc asks AAAA only after A's answer, and not after a SERVFAIL",
                lambda query: query[1].startswith("a-sf-") and query[2] == "AAAA",
            ),
        ),
    ),
]

# What the engine leaves to glibc's getaddrinfo (on threads): it must say so.
FALLBACK = [
    Config(
        "nsswitch-dns-files",
        "nsswitch.conf: hosts: dns files",
        [*cases("sf.test", "U", "66"), *cases("localhost", "U", "66")],
        lab={"dns": {"sf.test": SERVFAIL}, "nsswitch": "hosts: dns files\n"},
        fallback="nsswitch.conf",
    ),
    Config(
        "nsswitch-files",
        "nsswitch.conf: hosts: files",
        [*cases("dnsonly.test", "U", "65")],
        lab={"dns": {"dnsonly.test": BOTH}, "nsswitch": "hosts: files\n"},
        fallback="nsswitch.conf",
    ),
    Config(
        "nsswitch-comment",
        "nsswitch.conf: hosts: files dns # c (modules '#' and 'c')",
        [*cases("nx.test", "U4", "67")],
        lab={"dns": {}, "nsswitch": "hosts: files dns # c\n"},
        fallback="nsswitch.conf",
    ),
    Config(
        "gai-conf",
        "gai.conf: precedence ::ffff:0:0/96 100",
        [*cases("ok.test", "U", "64"), *cases("localhost", "U", "64")],
        lab={"dns": {"ok.test": BOTH}, "etc": {"gai.conf": "precedence ::ffff:0:0/96 100\n"}},
        fallback="gai.conf",
    ),
    Config(
        "host-conf-reorder",
        "host.conf: multi on, reorder on",
        [*cases("ok.test", "4", "§3")],
        lab={"dns": {"ok.test": BOTH}, "host_conf": "multi on\nreorder on\n"},
        fallback="reorder",
    ),
    # Not a fallback: glibc's default "files dns" when no hosts line counts.
    Config(
        "nsswitch-default",
        "nsswitch.conf without a hosts line ('HOSTS:' does not count): files dns",
        [*cases("localhost", "U", "69"), *cases("ok.test", "U", "69")],
        lab={"dns": {"ok.test": BOTH}, "nsswitch": "passwd: files\nHOSTS: dns\n"},
    ),
]

# Row 63 and 62: a dual-stack host (addresses and default routes on an interface that
# leads nowhere), where the two sorts disagree on the order: reported, not compared.
MIX_A = ["203.0.113.1", "10.9.0.77", "10.9.1.1", "127.0.0.5", "169.254.1.1", "10.9.0.3"]
MIX_AAAA = [
    "2002:c000:201::1", "2001:0:1::1", "fc00::1", "fec0::1", "2001:db8:ffff::1",
    "2001:db8::77", "2001:db8::3", "::ffff:198.51.100.1", "::1", "fe80::1", "2003::1",
]  # fmt: skip
ORDER = Config(
    "order",
    "dual stack: 10.9.0.2/24 and 2001:db8::2/64 with default routes",
    [*cases("mix.test", "U46", "63"), *cases("v4s.test", "4", "62"), *cases("ok.test", "U")],
    lab={
        "dns": {
            "mix.test": {"A": MIX_A, "AAAA": MIX_AAAA},
            "v4s.test": ["203.0.113.1", "10.9.0.200", "10.9.0.3", "192.0.2.1"],
            "ok.test": BOTH,
        }
    },
    interface=("10.9.0.2/24", "2001:db8::2/64"),
)

ODD = [
    Config(
        "ipv6-only",
        "an IPv6-only namespace: the nameserver is ::1",
        [*cases("ok.test", "U46"), *cases("localhost", "U4"), *cases("nx.test", "U")],
        lab={"dns": {"ok.test": BOTH}, "ipv4": False},
    ),
    Config(
        "resolv-quirks",
        "resolv.conf read as glibc reads it: comments, an indented line, 127.1 with junk, "
        "domain then search (the last wins), options by prefix, ndots:0",
        [*cases("host", "4U", "§4"), *cases("other", "4", "§4"), *cases("x.y", "4", "§4")],
        lab={
            "dns": {"host.a.example": "192.0.2.1", "other.ignored.example": "192.0.2.2"},
            "resolv_conf": (
                "; a comment\n# another\ndomain ignored.example\nsearch a.example\n"
                " nameserver 10.0.0.99\nnameserver 127.1 and junk\n"
                "options ndots:0 timeout:1 attempts:1 rotatexyz\n"
            ),
        },
    ),
]

CONFIGS: list[Config] = [BASE, *SEARCH, MATRIX, *SERVERS, *OPTIONS, *ODD, *FALLBACK, ORDER]

#: Disagreements not resolved (expected failures): "config:label" (a case),
#: "config:queries" (the queries sent), "api:label" (a public API check), "rotate".
OPEN: dict[str, str] = {}

# Through the public API: [label, name, family, timeout], per namespace.
API_CHECKS: dict[str, list[list[Any]]] = {
    "base": [
        ["api.test/U", "api.test", "U", 5.0],
        ["api4.test/U", "api4.test", "U", 5.0],
        ["api6.test/6", "api6.test", "6", 5.0],
        ["localhost/U", "localhost", "U", 5.0],
        ["127.1/U", "127.1", "U", 5.0],
        ["nx.test/U", "nx.test", "U", 5.0],
        ["nodata.test/4", "nodata.test", "4", 5.0],
        ["a..b/U", "a..b", "U", 5.0],
        ["::1/4", "::1", "4", 5.0],
        ["fe80::1%nosuchif/U", "fe80::1%nosuchif", "U", 5.0],
    ],
    # The dead first nameserver: the answer from the second after its 1 s.
    "two-servers": [["ok.test/U", "ok.test", "U", 5.0]],
    # Nothing answers: the call's own timeout ends it, with nothing left behind.
    "silent": [["ok.test/U timeout=0.5", "ok.test", "U", 0.5]],
}
#: Parse-level refusals (before any lookup, on either resolver path): glibc's EAI code,
#: where the engine raises InvalidParameterError.
PARSE_LEVEL = {
    "a..b/U": EAI_NONAME,
    "::1/4": EAI_ADDRFAMILY,
    "fe80::1%nosuchif/U": EAI_NONAME,
}

ROTATE_LAB = {
    "dns": [
        DNSConfig(host="127.0.0.2", names={"which.test": "192.0.2.1"}),
        DNSConfig(host="127.0.0.3", names={"which.test": "192.0.2.2"}),
    ],
    "options": "rotate",
}

# --------------------------------------------------------------------------- running

#: The namespaces whose cases take longest (timeouts), started first.
SLOW = [
    "base", "matrix", "silent", "use-vc-silent-first", "tc-then-tcp-silent", "two-servers",
    "search",
]  # fmt: skip

Query = tuple[str, ...]  # (server, name as sent, type, transport)


@dataclass
class Run:
    config: Config
    glibc: dict[str, Any]
    engine: dict[str, Any]  # the results by label, or {} when unsupported
    unsupported: list[str] | None
    leaks: dict[str, Any] | None
    timed_queries: dict[str, list[tuple[float, Query]]]
    elapsed: float

    @property
    def queries(self) -> dict[str, set[Query]]:
        return {side: {query for _, query in timed} for side, timed in self.timed_queries.items()}


@dataclass
class Differential:
    runs: dict[str, Run]
    api: dict[str, dict[str, Any]]
    rotate: dict[str, Any]
    elapsed: float
    timings: dict[str, float]


def _split_queries(lab: Lab, phases: list[float]) -> dict[str, list[tuple[float, Query]]]:
    """Each side's queries, in order, with their arrival times (from its phase's start)."""
    glibc_started, engine_started, ended = phases
    split: dict[str, list[tuple[float, Query]]] = {"glibc": [], "engine": []}
    for server in lab.dns_servers:
        for query in server.queries():
            entry = (query.server, query.name or "?", query.type or "?", query.transport)
            if glibc_started <= query.monotonic < engine_started:
                split["glibc"].append((query.monotonic - glibc_started, entry))
            elif engine_started <= query.monotonic <= ended:
                split["engine"].append((query.monotonic - engine_started, entry))
    for queries in split.values():
        queries.sort()
    return split


def _run_config(lab: Lab, config: Config) -> Run:
    table = [[case.label, case.name, case.family, case.prelude] for case in config.cases]
    started = time.monotonic()
    outcome = lab.call(probe, table, config.hang_after, env=config.env, timeout=120)
    engine = outcome["engine"]
    return Run(
        config,
        outcome["glibc"],
        engine.get("results", {}),
        engine.get("unsupported"),
        engine.get("leaks"),
        _split_queries(lab, outcome["phases"]),
        time.monotonic() - started,
    )


def _run_configs(lab: Lab, configs: Sequence[Config]) -> list[Run]:
    return [_run_config(lab, config) for config in configs]


def _open(arguments: Mapping[str, Any], interface: Sequence[str] = ()) -> Lab:
    # The DNS servers send records in the script's order, so that the order each side
    # returns tells of its sort alone.
    arguments = dict(arguments)
    dns = arguments.get("dns")
    if isinstance(dns, Mapping):
        host = "127.0.0.1" if arguments.get("ipv4", True) else "::1"
        arguments["dns"] = DNSConfig(names=dns, host=host, shuffle=False)
    elif dns is not None:
        arguments["dns"] = [dataclasses.replace(config, shuffle=False) for config in dns]
    lab = Lab(**arguments).open()
    if interface:
        try:
            device = lab.ns.add_interface()
            for address in interface:
                lab.ns.add_address(address, dev=device)
            lab.ns.ip("route", "add", "default", "dev", device)
            lab.ns.ip("-6", "route", "add", "default", "dev", device)
        except BaseException:
            lab.close()
            raise
    return lab


@pytest.fixture(scope="module")
def differential() -> Differential:
    reason = lab_module.unavailable_reason()
    if reason is not None:
        plugin._lab_unavailable(reason)
    pytest.importorskip("dns.message")
    started = time.monotonic()
    homes: dict[str, list[Config]] = {}
    for config in CONFIGS:
        homes.setdefault(config.home, []).append(config)
    labs: dict[str, Lab] = {}
    timings: dict[str, float] = {}

    def open_and_run(home: str) -> list[Run]:
        # The configurations of one namespace one after the other: its query log is
        # split by time.
        opened = time.monotonic()
        first = homes[home][0]
        labs[home] = lab = _open(first.lab, first.interface)
        timings[f"open {home}"] = time.monotonic() - opened
        return [_run_config(lab, config) for config in homes[home]]

    try:
        # The namespaces at once (the cases mostly wait on timeouts), the slowest
        # first; then the public API's timing checks one at a time, on a quieter
        # machine.
        slowest = sorted(homes, key=lambda home: SLOW.index(home) if home in SLOW else len(SLOW))
        with ThreadPoolExecutor(6) as pool:
            rotating = pool.submit(_open, ROTATE_LAB)
            running = [pool.submit(open_and_run, home) for home in slowest]
            labs["rotate"] = rotating.result()
            rotate = labs["rotate"].call(rotate_side, "which.test", 6)
            runs = {run.config.key: run for future in running for run in future.result()}
        timings["table"] = time.monotonic() - started
        api = {
            home: labs[home].call(api_side, labs[home].port or PORT, checks)
            for home, checks in API_CHECKS.items()
        }
    finally:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(Lab.close, list(labs.values())))
    timings.update({f"run {key}": run.elapsed for key, run in runs.items()})
    result = Differential(runs, api, rotate, time.monotonic() - started, timings)
    report = os.environ.get("CBN_DIFFERENTIAL_REPORT")
    if report:
        Path(report).write_text(render_report(result), encoding="utf-8")
    return result


# --------------------------------------------------------------------------- judging


def shown(result: dict[str, Any] | None) -> str:
    if result is None:
        return "(missing)"
    if result.get("hang"):
        return "hangs"
    if result.get("addresses"):
        return ", ".join(result["addresses"])
    code = result.get("error")
    return ERROR_NAMES.get(code, str(code)) if code is not None else "(nothing)"


def check_case(case: Case, glibc: dict[str, Any], engine: dict[str, Any]) -> None:
    """The engine against glibc for one case (see the module's docstring)."""
    if case.differs is not None:
        case.differs.check(glibc, engine)
        return
    assert not glibc.get("hang"), "glibc hung"
    assert not engine.get("hang"), "the engine hung"
    assert _addresses(engine) == _addresses(glibc), (
        f"addresses: glibc {shown(glibc)}, engine {shown(engine)}"
    )
    if not glibc.get("addresses"):
        if case.errno_dependent:
            assert glibc["error"] in (EAI_NONAME, EAI_NODATA)
            assert engine["error"] in (EAI_NONAME, EAI_NODATA)
        else:
            assert engine["error"] == glibc["error"], (
                f"error: glibc {shown(glibc)}, engine {shown(engine)}"
            )


def verdict(run: Run, case: Case) -> str:
    """The report's word on a case."""
    if run.unsupported is not None:
        return "falls back to glibc's getaddrinfo (configuration not reproduced)"
    glibc, engine = run.glibc.get(case.label), run.engine.get(case.label)
    if glibc is None or engine is None:
        return "missing"
    try:
        check_case(case, glibc, engine)
    except AssertionError as exc:
        reason = OPEN.get(f"{run.config.key}:{case.label}")
        word = f"OPEN: {reason}" if reason else "DIFFERS"
        return f"{word} ({str(exc).splitlines()[0]})"
    if case.differs is not None:
        return f"documented: {case.differs.reason}"
    if case.errno_dependent and glibc.get("error") != engine.get("error"):
        return "same (glibc's code here depends on the caller's errno)"
    return "same"


def _table_params() -> list[Any]:
    params = []
    for config in CONFIGS:
        for case in config.cases:
            key = f"{config.key}:{case.label}"
            params.append(pytest.param(config, case, id=key, marks=_open_marks(key)))
    return params


def _open_marks(key: str) -> list[pytest.MarkDecorator]:
    reason = OPEN.get(key)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("config", "case"), _table_params())
def test_same_answer_as_glibc(differential: Differential, config: Config, case: Case) -> None:
    """One row: the same addresses (as a multiset), or the same EAI code, as glibc; or
    the documented difference and what the engine does instead."""
    run = differential.runs[config.key]
    if run.unsupported is not None:
        # Not the engine's to answer: the system's getaddrinfo does, on threads.
        assert config.fallback is not None, run.unsupported
        assert any(config.fallback in reason for reason in run.unsupported)
        return
    assert config.fallback is None, "the engine answers itself"
    check_case(case, run.glibc[case.label], run.engine[case.label])


@pytest.mark.parametrize(
    "config",
    [pytest.param(c, id=c.key, marks=_open_marks(f"{c.key}:queries")) for c in CONFIGS],
)
def test_same_queries_as_glibc(differential: Differential, config: Config) -> None:
    """The names, types, transports and servers each side asked (as sets: retries and
    order are the schedule's, checked by the timings), but for documented reasons."""
    run = differential.runs[config.key]
    if run.unsupported is not None:
        return
    glibc, engine = run.queries["glibc"], run.queries["engine"]

    def unexplained(queries: set[Query], who: str) -> list[Query]:
        return sorted(
            query
            for query in queries
            if not any(side == who and test(query) for side, _, test in config.query_differences)
        )

    only = {"glibc": unexplained(glibc - engine, "glibc")}
    only["engine"] = unexplained(engine - glibc, "engine")
    assert only == {"glibc": [], "engine": []}, "\n".join(
        f"only {side}: {' '.join(query)}" for side, queries in only.items() for query in queries
    )


@pytest.mark.parametrize("config", CONFIGS, ids=[config.key for config in CONFIGS])
def test_nothing_left_behind(differential: Differential, config: Config) -> None:
    """After all its resolutions ran at once and were closed: no descriptor, thread or
    child process more than before."""
    run = differential.runs[config.key]
    if run.unsupported is not None:
        return
    assert run.leaks is not None
    assert run.leaks["fds"] == []
    assert run.leaks["threads"] == 0
    assert run.leaks["tasks"] <= 0  # glibc's hanging threads may end meanwhile
    assert run.leaks["children"] == []


@pytest.mark.parametrize(
    "label",
    [pytest.param(c[0], id=c[0], marks=_open_marks(f"api:{c[0]}")) for c in API_CHECKS["base"]],
)
def test_through_the_public_api(differential: Differential, label: str) -> None:
    """connect_by_name to a server on the answered address (the race and the own
    resolver together): where glibc's answer says, or the error glibc gives; and the
    own resolver starts no thread at all."""
    seen = differential.api["base"][label]
    glibc, engine = seen["glibc"], seen["engine"]
    assert engine["threads_started"] == []
    assert engine["threads_delta"] == 0
    assert engine["fds_left"] == []
    assert "connectbyname-resolver" not in engine["threads_alive"]
    if label in PARSE_LEVEL:
        assert glibc["error"] == PARSE_LEVEL[label]
        assert engine["error"] == "InvalidParameterError"
    elif glibc.get("addresses"):
        assert engine.get("remote") in glibc["addresses"], engine
    else:
        assert engine["error"] == "NameResolutionError", engine
        assert engine["errno"] == glibc["error"], engine


def test_dead_first_nameserver_costs_its_timeout(differential: Differential) -> None:
    """timeout:1, the first nameserver silent: the second's answer after ~1 s, as glibc
    (in the table, and connecting through the public API)."""
    run = differential.runs["two-servers"]
    for family in "U46":
        label = f"ok.test/{family}"
        assert 0.9 <= run.glibc[label]["elapsed"] < 1.6, label
        assert 0.9 <= run.engine[label]["elapsed"] < 1.6, label
    seen = differential.api["two-servers"]["ok.test/U"]["engine"]
    assert seen.get("remote") in LOOPBACK_ANSWER, seen
    assert 0.9 <= seen["elapsed"] < 2.0
    assert seen["threads_started"] == []


def test_silent_nameservers_end_at_the_call_timeout(differential: Differential) -> None:
    """Nothing answers and the call's timeout is 0.5 s: TimedOutError in time (0.55 s,
    with a margin for a loaded machine), and no thread, socket or child process left;
    only the first three nameservers are ever asked, by either side."""
    seen = differential.api["silent"]["ok.test/U timeout=0.5"]["engine"]
    assert seen["error"] == "TimedOutError"
    assert seen["elapsed"] < 0.75
    assert seen["threads_started"] == []
    assert seen["threads_delta"] == 0
    assert seen["fds_left"] == []
    assert seen["children"] == []
    run = differential.runs["silent"]
    for side in ("glibc", "engine"):
        servers = {query[0] for query in run.queries[side]}
        assert servers == {"127.0.0.2:53", "127.0.0.3:53", "127.0.0.4:53"}, side
    for label in ("ok.test/U", "ok.test/4"):
        assert 2.9 <= run.engine[label]["elapsed"] < 3.6  # 1 s per server, as glibc


def test_no_sticky_single_request_mode(differential: Differential) -> None:
    """Row 72: after the thread's lookup whose AAAA timed out, glibc sends AAAA only
    once A is answered (0.4 s later), from a new socket; the engine sends both at
    once."""
    run = differential.runs["base"]
    gaps = {}
    for side, timed in run.timed_queries.items():
        sent = {query[2]: when for when, query in timed if query[1] == "slow.test."}
        gaps[side] = sent["AAAA"] - sent["A"]
    assert gaps["glibc"] >= 0.35, gaps
    assert abs(gaps["engine"]) < 0.1, gaps


def test_rotate_spreads_over_the_servers(differential: Differential) -> None:
    """options rotate, two servers with different answers: glibc starts each lookup at
    the next server (from a random one); so does the engine."""
    seen = differential.rotate
    for side in ("glibc", "engine"):
        answers = [tuple(addresses or ()) for addresses in seen[side]]
        assert set(answers) == {("192.0.2.1",), ("192.0.2.2",)}, (side, answers)
        assert all(a != b for a, b in itertools.pairwise(answers)), (side, answers)


# --------------------------------------------------------------------------- report


def render_report(result: Differential) -> str:
    """The table as markdown: each case's answers and verdict, then the order
    differences (same addresses, another order)."""
    lines = [
        "# The engine's own resolver against glibc 2.36's getaddrinfo",
        "",
        f"Generated by `tests/test_dns_differential.py` (CBN_DIFFERENTIAL_REPORT); "
        f"the whole run took {result.elapsed:.1f} s.",
        "Families: U = AF_UNSPEC, 4 = AF_INET, 6 = AF_INET6. Row = the glibc notes' §15 "
        "row (or section).",
        "",
    ]
    orders: list[str] = []
    for config in CONFIGS:
        run = result.runs[config.key]
        env = f" (env {dict(config.env)})" if config.env else ""
        lines += [
            f"## {config.key}: {config.title}{env}",
            "",
            "| case | row | glibc | engine | verdict |",
            "|---|---|---|---|---|",
        ]
        for case in config.cases:
            glibc, engine = run.glibc.get(case.label), run.engine.get(case.label)
            engine_text = "(glibc)" if run.unsupported is not None else shown(engine)
            glibc_text = shown(glibc)
            if glibc is not None and "elapsed" in glibc and glibc.get("elapsed", 0) >= 0.5:
                glibc_text += f" ({glibc['elapsed']:.1f} s)"
            if engine is not None and engine.get("elapsed", 0) >= 0.5:
                engine_text += f" ({engine['elapsed']:.1f} s)"
            lines.append(
                f"| `{case.label}` | {case.row} | {glibc_text} | {engine_text} | "
                f"{verdict(run, case)} |"
            )
            if (
                glibc is not None
                and engine is not None
                and len(glibc.get("addresses") or ()) > 1
                and _addresses(glibc) == _addresses(engine)
                and glibc["addresses"] != engine["order"]
            ):
                orders.append(
                    f"| {config.key} | `{case.label}` | {', '.join(glibc['addresses'])} | "
                    f"{', '.join(engine['order'])} |"
                )
        lines.append("")
    lines += [
        "## Order differences (same addresses)",
        "",
        "glibc sorts by RFC 3484 (its default table), the engine by RFC 6724 "
        "(`_dns._sort.sort_destinations`): compared as sets above, listed here.",
        "",
        "| config | case | glibc | engine (RFC 6724) |",
        "|---|---|---|---|",
        *orders,
        "",
        "## Through the public API",
        "",
        "| namespace | case | glibc | connect_by_name | threads started |",
        "|---|---|---|---|---|",
    ]
    for home, checks in result.api.items():
        for label, seen in checks.items():
            engine = seen["engine"]
            done = engine.get("remote") or f"{engine.get('error')} ({engine.get('errno')})"
            lines.append(
                f"| {home} | `{label}` | {shown(seen['glibc'])} | {done} "
                f"({engine['elapsed']:.2f} s) | {len(engine['threads_started'])} |"
            )
    lines += [
        "",
        "## rotate",
        "",
        f"glibc: {result.rotate['glibc']}; engine: {result.rotate['engine']}",
        "",
        "## Timings (s)",
        "",
        ", ".join(f"{key}: {value:.1f}" for key, value in sorted(result.timings.items())),
        "",
    ]
    return "\n".join(lines)
