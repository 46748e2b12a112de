"""The benchmark suite: stock clients against the connectbyname engine and adapters.

    python bench/run.py [--quick] [--out bench/results]
    python bench/run.py --only ID[,ID...] --merge   # run some benchmarks again

One run measures every benchmark the issues name that can run here, stock and adapted
side by side, and writes ``results.json`` (every sample), ``results.md`` (medians,
spread, ratio adapted/stock, targets) and ``chart.png`` (time to first response and the
scale figure; needs matplotlib, the ``bench`` extra). Nothing here is assumed: every
figure is measured in the run.

Everything runs in the network lab (`connectbyname.testing.lab`; Linux, root,
iproute2): per scenario a network namespace with the lab's DNS server in a process of
its own, resolv.conf and hosts of its own, the HTTP servers and blackholes the scenario
needs, and the measuring code (``bench/measure.py``) in a process of its own inside,
one per benchmark. Stock clients resolve through glibc's ``getaddrinfo``, the engine
and the adapters through the engine's own resolver: both ask the same DNS server.
Where a first connection is measured every sample uses a fresh name, so that neither
the engine's TTL cache nor its connection history can help it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import select
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import measure
from measure import (
    ASYNC,
    CLIENTS,
    ENGINE,
    Bench,
    RowSpec,
    Sample,
    _fmt,
    _ratio,
    adapted_every,
    label,
    make_row,
)

from connectbyname.testing import HTTPServer
from connectbyname.testing.lab import (
    DROP,
    DNSConfig,
    DNSServer,
    Lab,
    Namespace,
    Reply,
    svcb,
    unavailable_reason,
)

__all__ = ["_fmt", "_ratio", "main"]  # bench/summary.py formats as results.md does

HERE = Path(__file__).resolve().parent
#: The port every lab's servers and blackholes use (each namespace has its own ports).
PORT = 8080
#: The TTL of the records where the TTL is not the subject.
TTL = 300
#: How late the slow answers come.
DELAY = 0.3
#: The dead-nameserver benchmark's timeout.
DEAD_DNS_TIMEOUT = 0.5
#: The order of the benchmarks in the results (the run goes lab by lab).
ORDER = (
    "first_response_blackholed_v6",
    "first_response_tls_mute_v6",
    "failure_all_blackholed",
    "first_response_slow_aaaa",
    "first_response_https_hints",
    "second_connection_blackholed_v6",
    "scale_dead_addresses",
    "dead_nameserver",
    "dead_nameserver_left",
    "connect_rate_literal",
    "connect_rate_events",
    "connect_cpu_events",
    "request_rate_new_connection_ttl300",
    "request_rate_new_connection_ttl0",
    "connect_rate_name_ttl0",
    "connect_cpu_name_ttl0",
    "request_rate_new_connection_literal",
    "request_rate_new_connection_localhost",
    "request_rate_new_connection_https",
    "request_rate_new_connection_https_literal",
    "request_rate_keepalive",
    "concurrent_500",
    "threads_per_connection",
)
HOSTS = "127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n"
#: The HTTPS servers' port: https's own (each namespace has its own ports), so the URLs
#: are https://NAME/ as users write them, and the engine, given an ssl_context, asks
#: for the name's HTTPS record as the adapters do for every https:// URL.
TLS_PORT = 443


# --------------------------------------------------------------------------- load


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, steal included)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _our_seconds(ns: Namespace | None) -> float:
    """CPU seconds of this run: this process, its finished children, and whatever
    still runs in namespace ``ns`` (its DNS server, the HTTP server)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    if ns is not None:
        listed = subprocess.run(
            ["ip", "netns", "pids", ns.name], capture_output=True, text=True, check=False
        )
        total += sum(_process_seconds(int(w)) for w in listed.stdout.split() if w.isdigit())
    return total


class Load:
    """How busy the machine was with other work between `start` and `stop`."""

    def __init__(self, ns: Namespace | None = None) -> None:
        self.ns = ns
        self.wall = time.monotonic()
        self.busy = _busy_seconds()
        self.ours = _our_seconds(ns)
        self.loadavg = os.getloadavg()[0]

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        busy = _busy_seconds() - self.busy
        ours = _our_seconds(self.ns) - self.ours
        cores = os.cpu_count() or 1
        return {
            "seconds": wall,
            "others_share": max(0.0, busy - ours) / (wall * cores) if wall > 0 else 0.0,
            "ours_share": ours / (wall * cores) if wall > 0 else 0.0,
            "loadavg_start": self.loadavg,
            "loadavg_end": os.getloadavg()[0],
        }


# --------------------------------------------------------------------------- labs


def _tls_files(ns: Namespace) -> dict[str, str]:
    """A certificate authority of the lab's own (trustme, the bench extra) and a
    certificate it issued for ``*.bench.test``, localhost, 127.0.0.1 and ::1, as files
    in the namespace's work directory: ``ca`` (what the clients trust) and ``server``
    (the chain and its key)."""
    import trustme

    authority = trustme.CA()
    issued = authority.issue_cert("*.bench.test", "localhost", "127.0.0.1", "::1")
    files = {"ca": str(ns.workdir / "ca.pem"), "server": str(ns.workdir / "server.pem")}
    authority.cert_pem.write_to_path(files["ca"])
    issued.private_key_and_cert_chain_pem.write_to_path(files["server"])
    return files


def _bench_server(lab: Lab, files: dict[str, str], tls_hosts: Sequence[str]) -> dict[str, int]:
    """bench/server.py in ``lab``, serving HTTPS on `TLS_PORT` of ``tls_hosts`` too:
    its ports (``http_port``, ``sink_port``, ``tls_port``)."""
    argv = [sys.executable, str(HERE / "server.py"), "--tls", files["server"]]
    argv += ["--tls-port", str(TLS_PORT), *(f"--tls-host={host}" for host in tls_hosts)]
    server = lab.spawn(argv, stdout=True, stdin=True)
    line = _read_line(server.popen.stdout, 20.0).split()
    if len(line) != 3:
        raise RuntimeError(f"bench/server.py did not start: {server.stderr()}")
    return dict(zip(("http_port", "sink_port", "tls_port"), map(int, line), strict=True))


def _dual(ttl: int = TTL, **delays: float) -> dict[str, Reply]:
    """AAAA ::1 and A 127.0.0.1, each with its delay (``aaaa=0.3``, ``a=0.3``)."""
    return {
        "AAAA": Reply("::1", ttl=ttl, delay=delays.get("aaaa", 0.0)),
        "A": Reply("127.0.0.1", ttl=ttl, delay=delays.get("a", 0.0)),
    }


def _pool(prefix: str, count: int) -> list[Any]:
    """A pool of names for `measure.Names`: its template and size."""
    return [f"{prefix}{{}}.bench.test", count]


def _names(pool: list[Any]) -> list[str]:
    template, count = pool
    return [template.format(i) for i in range(1, count + 1)]


def run_inside(lab: Lab, bench_id: str, quick: bool, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Benchmark ``bench_id`` in a process of its own inside ``lab``: it, and the
    benchmarks measured in its batches (`measure.MEASURED_WITH`)."""
    load = Load(lab.ns)
    try:
        benches: list[dict[str, Any]] = lab.call(
            measure.run_bench, bench_id, quick, info, timeout=1800
        )
    except Exception as exc:  # the run goes on; the results say what failed
        print(f"\n{bench_id} FAILED: {exc}", file=sys.stderr)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ids = [bench_id, *(k for k, v in measure.MEASURED_WITH.items() if v == bench_id)]
        benches = [
            {
                "id": failed,
                "short": failed,
                "title": failed,
                "unit": "s",
                "note": f"Failed in this run: {first}",
                "rows": [],
                "failed": True,
            }
            for failed in ids
        ]
    measured = load.stop()
    for bench in benches:
        bench["load"] = measured
    print(f"    ({measured['seconds']:.0f} s)")
    return benches


def lab_blackholed(quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """[::1]:P, 127.0.0.2:P and 127.0.0.3:P blackholed, 127.0.0.1:P serving HTTP."""
    pools = {"fr": _pool("fr", 200), "sc": _pool("sc", 200), "ad": _pool("ad", 60)}
    dead = {"AAAA": Reply("::1", ttl=TTL), "A": Reply(["127.0.0.2", "127.0.0.3"], ttl=TTL)}
    names = {name: _dual() for key in ("fr", "sc") for name in _names(pools[key])}
    names.update(dict.fromkeys(_names(pools["ad"]), dead))
    with Lab(
        dns=names,
        http=["127.0.0.1"],
        blackhole=["::1", "127.0.0.2", "127.0.0.3"],
        port=PORT,
        hosts=HOSTS,
    ) as lab:
        for bench_id, pool in (
            ("first_response_blackholed_v6", "fr"),
            ("failure_all_blackholed", "ad"),
            ("second_connection_blackholed_v6", "sc"),
        ):
            if bench_id in wanted:
                info = {"port": lab.port, "names": pools[pool]}
                yield from run_inside(lab, bench_id, quick, info)


def lab_tls_mute(quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """HTTPS on 127.0.0.1:443; [::1]:443 accepts TCP and never answers TLS."""
    if "first_response_tls_mute_v6" not in wanted:
        return
    pool = _pool("tm", 200)
    with Lab(dns={name: _dual() for name in _names(pool)}, hosts=HOSTS) as lab:
        files = _tls_files(lab.ns)
        _bench_server(lab, files, ["127.0.0.1"])
        # It never reads or writes a byte: no certificate is ever sent.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        mute = lab.run_inside(lambda: HTTPServer("::1", TLS_PORT, context, handshake="mute"))
        lab.ns.on_close(mute.close)
        info = {"port": TLS_PORT, "names": pool, "ca": files["ca"]}
        yield from run_inside(lab, "first_response_tls_mute_v6", quick, info)


def lab_slow(quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """HTTP on [::1]:P and 127.0.0.1:P, HTTPS on [::1]:443 and 127.0.0.1:443; names
    whose AAAA answer is late, and names whose address answers are both late but whose
    HTTPS record (with address hints) is on time."""
    pools = {"sa": _pool("sa", 200), "hh": _pool("hh", 120)}
    names: dict[str, Any] = {name: _dual(aaaa=DELAY) for name in _names(pools["sa"])}
    # No port key: 443, the origin's. On port 443 the record is the name's own (RFC 9460
    # section 9.1: no _port._https prefix).
    record = svcb(1, ".", ipv4hint="127.0.0.1", ipv6hint="::1")
    for name in _names(pools["hh"]):
        names[name] = {**_dual(aaaa=DELAY, a=DELAY), "HTTPS": Reply(record, ttl=TTL)}
    with Lab(dns=names, http=["127.0.0.1", "::1"], port=PORT, hosts=HOSTS) as lab:
        files = _tls_files(lab.ns)
        _bench_server(lab, files, ["127.0.0.1", "::1"])
        for bench_id, pool in (
            ("first_response_slow_aaaa", "sa"),
            ("first_response_https_hints", "hh"),
        ):
            if bench_id in wanted:
                info = {
                    "port": lab.port,
                    "tls_port": TLS_PORT,
                    "ca": files["ca"],
                    "names": pools[pool],
                    "delay": DELAY,
                }
                yield from run_inside(lab, bench_id, quick, info)


def _start_ordered_dns(ns: Namespace, config: DNSConfig) -> DNSServer:
    """The lab's DNS server, but keeping each answer's records in the scripted order
    (``bench/dnsorder.py``), in ``ns``."""
    log = ns.workdir / "dns-ordered.queries.jsonl"
    log.touch()
    config.log = str(log)
    path = ns.workdir / "dns-ordered.json"
    path.write_text(json.dumps(config.to_json()), encoding="utf-8")
    argv = [sys.executable, str(HERE / "dnsorder.py"), "--config", str(path)]
    process = ns.spawn([*argv, "--exit-with-stdin"], stdout=True, stdin=True)
    line = _read_line(process.popen.stdout, 20.0)
    if not line:
        process.stop()
        raise RuntimeError(f"bench/dnsorder.py did not start: {process.stderr()}")
    listen = [(str(host), int(port)) for host, port in json.loads(line)["listen"]]
    server = DNSServer(config, process, listen)
    ns.on_close(server.stop)
    return server


def _read_line(stream: Any, timeout: float) -> str:
    """One line from a pipe, or "" if none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            return ""
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            return ""
        data += chunk
    return data.decode()


def lab_scale(quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """127.0.0.2:P .. 127.0.0.9:P blackholed, HTTP on 192.0.2.1:P (added to lo)."""
    if "scale_dead_addresses" not in wanted:
        return
    counts, good = (1, 2, 4, 8), "192.0.2.1"
    dead = [f"127.0.0.{i}" for i in range(2, 2 + max(counts))]
    pools = {n: _pool(f"s{n}-", 60) for n in counts}
    names = {
        name: {"A": Reply([*dead[:n], good], ttl=TTL)} for n in counts for name in _names(pools[n])
    }
    with Lab(http=[good], blackhole=dead, port=PORT, hosts=HOSTS) as lab:
        _start_ordered_dns(lab.ns, DNSConfig(names=names))
        info = {"port": lab.port, "names": pools, "counts": counts, "good": good}
        yield from run_inside(lab, "scale_dead_addresses", quick, info)


def lab_dead_nameserver(quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """A nameserver that never answers; each side of each client in a process of its
    own (so that the threads and descriptors a call leaves are its own): the stock
    sides, which wait for glibc's resolver timeout, all at once, then the adapted
    sides one after the other."""
    if not wanted & {"dead_nameserver", "dead_nameserver_left"}:
        return
    n_stock, n_adapted = (1, 3) if quick else (3, 7)
    keys = (ENGINE, *CLIENTS)
    with Lab(dns=DNSConfig(default=DROP), hosts=HOSTS) as lab:
        assert lab.dns is not None
        load = Load(lab.ns)
        found: dict[tuple[str, bool], list[dict[str, Any]]] = {}
        errors: dict[tuple[str, bool], BaseException] = {}

        def side(key: str, adapted: bool, count: int) -> None:
            pool = [f"dn-{key}-{'a' if adapted else 's'}{{}}.bench.test", count]
            try:
                found[key, adapted] = lab.call(
                    measure.dead_nameserver_side,
                    key,
                    adapted,
                    pool,
                    PORT,
                    count,
                    DEAD_DNS_TIMEOUT,
                    timeout=600,
                )
            except BaseException as exc:
                errors[key, adapted] = exc

        stock = [threading.Thread(target=side, args=(key, False, n_stock)) for key in keys]
        for thread in stock:
            thread.start()
        # The stock processes only wait once they have sent their first queries; the
        # adapted sides are timed from then on, on a machine the start-ups left.
        lab.dns.wait_for_queries(2 * len(keys), timeout=30)
        for key in keys:
            side(key, True, n_adapted)
        for thread in stock:
            thread.join()
        measured = load.stop()
    print(f"    ({measured['seconds']:.0f} s)")
    if errors:
        (key, adapted), exc = next(iter(errors.items()))
        print(f"\ndead_nameserver FAILED: {exc}", file=sys.stderr)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        for bench_id in ("dead_nameserver", "dead_nameserver_left"):
            yield {
                "id": bench_id,
                "short": bench_id,
                "title": bench_id,
                "unit": "s",
                "note": f"Failed in this run ({key}, {'adapted' if adapted else 'stock'}): {first}",
                "rows": [],
                "failed": True,
                "load": measured,
            }
        return
    yield from dead_nameserver_benches(found, n_stock, n_adapted, measured)


def dead_nameserver_benches(
    found: dict[tuple[str, bool], list[dict[str, Any]]],
    n_stock: int,
    n_adapted: int,
    load: dict[str, float],
) -> Iterator[dict[str, Any]]:
    timeout = DEAD_DNS_TIMEOUT
    returned = {
        key: [s["loop_closed_after"] for s in found[key, False] if "loop_closed_after" in s]
        for key in ASYNC
    }
    runs = {"httpx-asyncio": "asyncio.run", "httpx-trio": "trio.run"}
    loops = "; ".join(
        f"{label(key)} stock: {runs[key]} returned {_fmt(max(values), 's')} after it began "
        "(the slowest sample)"
        for key, values in returned.items()
        if values
    )
    common = (
        f"Every name's nameserver (the lab's DNS server, the only one in resolv.conf, "
        f"glibc's default timeout:5 attempts:2) drops every query. Each call gets a "
        f"connect timeout of {timeout:g} s (connect_by_name's timeout; the clients' "
        "connect timeout), a new client and a fresh name. Each side of each client ran "
        "in a process of its own inside the namespace: the stock sides all at once (they "
        "wait for glibc's resolver), then the adapted sides one after the other. Each "
        "process first makes one untimed request to localhost (the hosts file answers; "
        "nothing listens, so it is refused at once), so that imports and first-use "
        "set-up are not timed."
    )
    time_bench = Bench(
        "dead_nameserver",
        f"failure, dead nameserver, {timeout:g} s",
        f"Time to failure, a nameserver that never answers (timeout {timeout:g} s)",
        "s",
        common + " glibc's getaddrinfo is bounded by its own resolver timeout, not by the "
        "connect timeout: stock sync clients wait for it; stock async ones give up at "
        "their timeout and leave the lookup running on its thread"
        + (f" ({loops})." if loops else ".")
        + " Adapted: every call must fail with connectbyname's TimedOutError (itself or "
        f"among the causes of the client's error) within {timeout + 0.05:g} s.",
        {"timeout": timeout},
    )
    left_bench = Bench(
        "dead_nameserver_left",
        "left running after a dead-nameserver failure",
        "Threads and descriptors left behind by a call that failed on a dead nameserver",
        "n",
        common + " Counted right after the call failed and its client was closed (for "
        "async clients still inside the event loop): threads started during the call that "
        "are still alive, and older ones (a pool's) now inside a getaddrinfo call, plus "
        "descriptors opened during the call that are still open; results.json has their "
        "names.",
        {"timeout": timeout},
    )
    every = adapted_every(
        timeout + 0.05, f"adapted: TimedOutError within {timeout + 0.05:g} s, every call"
    )
    nothing = adapted_every(0.0, "adapted: nothing left, every call")
    print(f"\n{time_bench.title}")
    for key in (ENGINE, *CLIENTS):
        spec = RowSpec(key, None, n_stock, n_adapted, concurrent_stock=True, targets=[every])
        stock = [
            Sample(s["seconds"], s["error"] is not None, s["error"] or "connected", s)
            for s in found[key, False]
        ]
        adapted = [
            Sample(
                s["seconds"],
                s["timed_out"],
                "" if s["timed_out"] else f"{s['error']}, not TimedOutError",
                s,
            )
            for s in found[key, True]
        ]
        time_bench.rows.append(make_row(time_bench, spec, stock, adapted))
    print(f"\n{left_bench.title}")
    for key in (ENGINE, *CLIENTS):
        spec = RowSpec(key, None, n_stock, n_adapted, concurrent_stock=True, targets=[nothing])
        sides = [
            [Sample(len(s["threads"]) + len(s["fds"]), True, "", s) for s in found[key, adapted]]
            for adapted in (False, True)
        ]
        left_bench.rows.append(make_row(left_bench, spec, *sides))
    for bench in (time_bench, left_bench):
        data = bench.to_json()
        data["load"] = load
        yield data


def lab_happy(ttl: int, quick: bool, wanted: set[str]) -> Iterator[dict[str, Any]]:
    """bench/server.py inside; names with one A record (127.0.0.1) and no AAAA, their
    TTL (and the negative answer's) ``ttl``."""
    if ttl:
        bench_ids = [
            "connect_rate_literal",
            "connect_rate_events",
            "request_rate_new_connection_ttl300",
            "request_rate_new_connection_literal",
            "request_rate_new_connection_localhost",
            "request_rate_new_connection_https",
            "request_rate_new_connection_https_literal",
            "request_rate_keepalive",
            "concurrent_500",
        ]
    else:
        bench_ids = [
            "request_rate_new_connection_ttl0",
            "connect_rate_name_ttl0",
            "threads_per_connection",
        ]
    bench_ids = [b for b in bench_ids if b in wanted]
    if not bench_ids:
        return
    pool = _pool("happy", 200)
    names = {name: {"A": Reply("127.0.0.1", ttl=ttl)} for name in _names(pool)}
    with Lab(dns=DNSConfig(names=names, negative_ttl=ttl), hosts=HOSTS) as lab:
        files = _tls_files(lab.ns)
        info = {**_bench_server(lab, files, ["127.0.0.1"]), "ca": files["ca"]}
        info.update(names=pool, ttl=ttl)
        for bench_id in bench_ids:
            yield from run_inside(lab, bench_id, quick, info)


LABS: tuple[Callable[[bool, set[str]], Iterator[dict[str, Any]]], ...] = (
    lab_blackholed,
    lab_tls_mute,
    lab_slow,
    lab_scale,
    lab_dead_nameserver,
    lambda quick, wanted: lab_happy(TTL, quick, wanted),
    lambda quick, wanted: lab_happy(0, quick, wanted),
)


# --------------------------------------------------------------------------- output


def _cell(s: dict[str, Any] | None, unit: str) -> str:
    return measure._cell(s, unit)


def _load_text(load: dict[str, float]) -> str:
    return (
        f"other work used {load['others_share']:.0%} of the machine's CPU "
        f"(load average {load['loadavg_start']:.2f} -> {load['loadavg_end']:.2f})"
    )


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = results["load"]
    shares = [b["load"]["others_share"] for b in results["benchmarks"] if "load" in b]
    lines = [
        "# connectbyname benchmarks",
        "",
        f"Run {results['started']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['system']}, {machine.get('libc', '')}, Python {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
        + f". Command: `{results['command']}` ({results['duration']:.0f} s).",
        "",
        f"Machine load: the machine is shared; other work used {load['others_share']:.0%} "
        f"of its CPU over the whole run ({min(shares, default=0):.0%} to "
        f"{max(shares, default=0):.0%} during the benchmarks shown; each note says), the "
        "run itself "
        f"{load['ours_share']:.0%}; load average {load['loadavg_start']:.2f} at the start, "
        f"{load['loadavg_end']:.2f} at the end.",
    ]
    shorts = {bench["id"]: bench["short"] for bench in results["benchmarks"]}
    for rerun in results.get("reruns", []):
        lines += [
            "",
            f"Run again {rerun['started']} (`{rerun['command']}`, {rerun['duration']:.0f} "
            f"s): {'; '.join(shorts.get(b, b) for b in rerun['benchmarks'])}; other work "
            f"used {rerun['load']['others_share']:.0%} of the CPU meanwhile.",
        ]
    lines += [
        "",
        "Medians; in brackets the interquartile range (min..max when fewer than 4 samples); "
        "n samples. Ratio (adapted/stock): for rows whose two sides were measured in turn, "
        "the median of the ratios of back-to-back pairs (one round stock first, the next "
        "adapted first), which a machine whose speed drifts moves less than the ratio of "
        "the two medians; for rows measured concurrently, adapted median / stock median.",
        "",
        "| benchmark | client | stock | adapted | adapted/stock | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for number, bench in enumerate(results["benchmarks"], 1):
        note = f"{number}. **{bench['title']}**: {bench['note']}"
        if "load" in bench:
            note += f" During this benchmark {_load_text(bench['load'])}."
        if bench.get("rerun"):
            note += f" (Run again {bench['rerun']}.)"
        notes.append(note)
        for row in bench["rows"]:
            if "unavailable" in row:
                lines.append(
                    f"| {bench['short']} [{number}] | {row['client']} | n/a | n/a | | "
                    f"{row['unavailable']} | |"
                )
                continue
            ratio = "" if row["ratio"] is None else _ratio(row["ratio"])
            targets = "; ".join(t["target"] for t in row["targets"])
            met = "; ".join("yes" if t["met"] else "**no**" for t in row["targets"])
            lines.append(
                f"| {bench['short']} [{number}] | {row['client']} | "
                f"{_cell(row['stock'], bench['unit'])} | {_cell(row['adapted'], bench['unit'])} "
                f"| {ratio} | {targets} | {met} |"
            )
    return "\n".join([*lines, "", *notes, ""])


def chart(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (the bench extra): no chart")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = {b["id"]: b for b in results["benchmarks"]}
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    first = benches.get("first_response_blackholed_v6")
    if first:
        rows = [r for r in first["rows"] if "unavailable" not in r]
        names = [r["client"].replace("engine: ", "").replace(" vs ", "\nvs ") for r in rows]
        xs = range(len(rows))
        for offset, side, color in ((-0.2, "stock", "#c44e52"), (0.2, "adapted", "#4c72b0")):
            medians = [r[side]["median"] for r in rows]
            low = [r[side]["median"] - r[side]["min"] for r in rows]
            high = [r[side]["max"] - r[side]["median"] for r in rows]
            bars = left.bar(
                [x + offset for x in xs],
                medians,
                0.4,
                yerr=[low, high],
                capsize=3,
                color=color,
                label=side if side == "stock" else "connectbyname",
            )
            left.bar_label(
                bars, labels=[_fmt(m, "s") for m in medians], fontsize=7, padding=2, rotation=90
            )
        left.set_ylim(0, 1.2 * max(r["stock"]["max"] for r in rows))
        left.set_xticks(list(xs), names, fontsize=7, rotation=20, ha="right")
        left.set_ylabel("seconds, median; whiskers min..max")
        left.set_title(first["title"], fontsize=10)
        left.legend()
    scale = benches.get("scale_dead_addresses")
    if scale:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for row in scale["rows"]:
            if "unavailable" not in row:
                by_key.setdefault(row["key"], []).append(row)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        markers = "osD^v<>"
        for i, (key, rows) in enumerate(by_key.items()):
            ns = [r["param"] for r in rows]
            short = "engine" if key == ENGINE else label(key)
            stock_name = "create_connection" if key == ENGINE else f"{short} stock"
            for side, style, name in (
                ("stock", "--", stock_name),
                ("adapted", "-", f"{short} + connectbyname"),
            ):
                right.plot(
                    ns,
                    [r[side]["median"] for r in rows],
                    style,
                    marker=markers[i % len(markers)],
                    markersize=9 - i,
                    color=colors[i % len(colors)],
                    label=name,
                )
        params = scale["params"]
        right.set_xticks(list(params["dead"]))
        right.set_xlabel("dead addresses before the good one")
        right.set_ylabel("seconds to connect, median")
        right.set_title(
            f"{scale['title']}\n(stock: {params['stock_connect_timeout']:g} s per address; "
            f"adapted: {params['adapted_connect_timeout']:g} s in all)",
            fontsize=10,
        )
        right.legend(fontsize=7)
    figure.suptitle(f"connectbyname, {results['started']}, {results['machine']['cpu']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in (
        "connectbyname",
        "urllib3",
        "requests",
        "httpx",
        "httpcore",
        "anyio",
        "trio",
        "aiohappyeyeballs",
        "dnspython",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "versions": versions,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 2 minutes)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    parser.add_argument(
        "--only", help=f"comma-separated benchmark ids (of: {', '.join(ORDER)}); default all"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace those benchmarks in the existing results.json",
    )
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        parser.exit(2, f"the benchmarks run in the network lab, which cannot run here: {reason}\n")
    wanted = set(ORDER)
    if args.only:
        wanted = {item.strip() for item in args.only.split(",") if item.strip()}
        unknown = wanted - set(ORDER)
        if unknown:
            parser.error(f"unknown benchmark ids: {', '.join(sorted(unknown))}")
        if "dead_nameserver_left" in wanted or "dead_nameserver" in wanted:
            wanted |= {"dead_nameserver", "dead_nameserver_left"}  # one measurement
        for derived, source in measure.MEASURED_WITH.items():
            if derived in wanted or source in wanted:
                wanted |= {derived, source}  # the same batches
    if args.merge and not args.only:
        parser.error("--merge needs --only")
    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    started = time.perf_counter()
    begun = _now()
    load = Load()
    print(f"{'':<62}{'stock':>28}  {'adapted':>28}")
    found: dict[str, dict[str, Any]] = {}
    for lab in LABS:
        for bench in lab(args.quick, wanted):
            found[bench["id"]] = bench
    duration = time.perf_counter() - started
    benches = [found[bench_id] for bench_id in ORDER if bench_id in found]
    if args.merge:
        results = json.loads((args.out / "results.json").read_text())
        if results.get("quick") != args.quick:
            parser.exit(2, "--merge: the saved run and this one differ in --quick\n")
        replaced = {b["id"] for b in benches}
        for bench in benches:
            bench["rerun"] = begun
        kept = [b for b in results["benchmarks"] if b["id"] not in replaced]
        by_id = {b["id"]: b for b in [*kept, *benches]}
        results["benchmarks"] = [by_id[i] for i in ORDER if i in by_id]
        # An earlier run-again of the same benchmarks no longer stands for anything.
        reruns = []
        for rerun in results.get("reruns", []):
            rerun["benchmarks"] = [b for b in rerun["benchmarks"] if b not in replaced]
            if rerun["benchmarks"]:
                reruns.append(rerun)
        results["reruns"] = reruns
        results["reruns"].append(
            {
                "started": begun,
                "command": command,
                "duration": duration,
                "benchmarks": sorted(replaced),
                "load": load.stop(),
            }
        )
    else:
        results = {
            "started": begun,
            "command": command,
            "quick": args.quick,
            "machine": machine(),
            "duration": duration,
            "load": load.stop(),
            "benchmarks": benches,
        }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    drew = chart(results, args.out / "chart.png")
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'results.md'}", end="")
    print(f", {args.out / 'chart.png'}" if drew else "")
    print(f"done in {duration:.0f} s")
    failed = [b["id"] for b in benches if b.get("failed")]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
