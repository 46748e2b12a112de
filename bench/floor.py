"""How close can a resolver written in Python come to glibc's on the TTL 0 row?

The TTL 0 rows (a new connection by name per request, every lookup asking the lab's
DNS server) miss their 1.0 line for the sync clients. This script puts a number on the
reason. In the lab, in rounds that run each kind's batch of connects by name back to
back, it times:

- ``stock``: ``socket.create_connection``, glibc's ``getaddrinfo`` (C);
- ``floor``: the least any resolver in Python must run per connect, and no more: one
  UDP socket to the nameserver, the AAAA and the A query with random IDs, one poll,
  both answers read, the address cut from the A answer's last four octets, then the
  engine's kind of connect (non-blocking, a second ``connect_ex``, ``getsockname``).
  No configuration read, no search list, no cache, no check of what came back: it is
  not a resolver, only a lower bound on one;
- ``engine``: ``connectbyname.connect_by_name``.

It prints, per kind, the median of its batches' connects per second and CPU per
connect, the median of each round's ratio to stock, and the Python opcodes one connect
runs (the engine's by file). If ``floor`` is not clearly above 1.0, no resolver in
Python reaches the line, whatever it trims; how far the engine is from the floor says
what the line would take (see the README, "What the misses mean").

    python bench/floor.py             # as root: about a minute on 2 cores
    python bench/floor.py --rounds 15 --connects 2000
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

NAME = "floor.bench.test"


class _Closes(Protocol):
    def close(self) -> None: ...


def _question(qtype: int) -> bytes:
    labels = b"".join(bytes([len(label)]) + label.encode() for label in NAME.split("."))
    return labels + b"\0" + struct.pack(">HH", qtype, 1)


def _floor_connect(nameserver: tuple[str, int], port: int) -> socket.socket:
    aaaa, a = _question(28), _question(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setblocking(False)
        udp.connect(nameserver)
        ident_aaaa, ident_a = struct.unpack(">HH", os.urandom(4))
        udp.send(struct.pack(">6H", ident_aaaa, 0x0100, 1, 0, 0, 0) + aaaa)
        udp.send(struct.pack(">6H", ident_a, 0x0100, 1, 0, 0, 0) + a)
        poll = select.poll()
        poll.register(udp.fileno(), select.POLLIN)
        address, answers = None, 0
        while answers < 2:
            if not poll.poll(3000):
                raise TimeoutError("the lab's DNS server did not answer")
            while answers < 2:
                try:
                    data = udp.recv(65535)
                except BlockingIOError:
                    break
                answers += 1
                if data[0] << 8 | data[1] == ident_a and data[7]:  # ANCOUNT > 0
                    address = socket.inet_ntoa(data[-4:])
    if address is None:
        raise LookupError(f"no A record for {NAME}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex((address, port))
    sock.connect_ex((address, port))
    sock.getsockname()
    return sock


def _nameserver() -> tuple[str, int]:
    with open("/etc/resolv.conf") as conf:
        for line in conf:
            fields = line.split()
            if fields[:1] == ["nameserver"]:
                return fields[1], 53
    raise LookupError("no nameserver in /etc/resolv.conf")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def inside(port: int, rounds: int, connects: int) -> None:
    """Run in the lab's namespace: time the three kinds and print the table."""
    from connectbyname import connect_by_name

    nameserver = _nameserver()
    kinds: dict[str, Callable[[], _Closes]] = {
        "stock": lambda: socket.create_connection((NAME, port), timeout=3.0),
        "floor": lambda: _floor_connect(nameserver, port),
        "engine": lambda: connect_by_name(NAME, port, timeout=3.0),
    }
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpus: dict[str, list[float]] = {kind: [] for kind in kinds}
    order = list(kinds)
    for kind in order:  # warm up: imports, caches, the server's first answers
        for _ in range(100):
            kinds[kind]().close()
    for round_ in range(rounds):
        for kind in order[round_ % 3 :] + order[: round_ % 3]:
            connect = kinds[kind]
            cpu, started = _cpu(), time.perf_counter()
            for _ in range(connects):
                connect().close()
            elapsed = time.perf_counter() - started
            rates[kind].append(connects / elapsed)
            cpus[kind].append((_cpu() - cpu) / connects * 1e6)
    # A round runs the three back to back, so the ratio of one round's rates is taken
    # under one load: the median of those is steadier than a ratio of medians on a
    # shared machine.
    print(f"{rounds} rounds of {connects} connects by name per kind, TTL 0; medians:")
    for kind in order:
        line = (
            f"  {kind:6} {statistics.median(rates[kind]):6.0f}/s  "
            f"{statistics.median(cpus[kind]):4.0f} us CPU/connect"
        )
        if kind != "stock":
            ratios = [mine / stock for mine, stock in zip(rates[kind], rates["stock"], strict=True)]
            line += (
                f"  {statistics.median(ratios):.3f} of stock "
                f"(rounds {min(ratios):.2f} to {max(ratios):.2f})"
            )
        print(line)
    print("Python opcodes per connect (traced, 20 connects; C code not counted):")
    for kind in order:
        by_file = _opcodes(kinds[kind], 20)
        parts = sorted(by_file.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{name} {count:,.0f}" for name, count in parts[:6] if count >= 100)
        print(f"  {kind:6} {sum(by_file.values()):6,.0f}" + (f"  ({shown})" if shown else ""))


def _opcodes(connect: Callable[[], _Closes], count: int) -> dict[str, float]:
    # Per file, so that the engine's count says where its opcodes are.
    by_file: dict[str, int] = {}

    def opcode(frame: FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            name = os.path.basename(frame.f_code.co_filename)
            by_file[name] = by_file.get(name, 0) + 1
        return opcode

    def call(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return opcode

    sys.settrace(call)
    try:
        for _ in range(count):
            connect().close()
    finally:
        sys.settrace(None)
    return {name: total / count for name, total in by_file.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--inside", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        inside(args.inside, args.rounds, args.connects)
        return
    from connectbyname.testing.lab import DNSConfig, Lab, Reply

    names = {NAME: {"A": Reply("127.0.0.1", ttl=0)}}
    with Lab(dns=DNSConfig(names=names, negative_ttl=0), http=["127.0.0.1"]) as lab:
        argv = [sys.executable, __file__, "--inside", str(lab.port)]
        argv += ["--rounds", str(args.rounds), "--connects", str(args.connects)]
        result = lab.exec(argv, timeout=3600)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
