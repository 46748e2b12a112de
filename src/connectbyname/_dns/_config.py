"""The system's resolver configuration, read exactly as glibc 2.36 reads it, and the
decision rules that depend only on it (no network I/O here).

The model is Go's resolver: read the configuration ourselves and use the C library
only for what cannot be reproduced. Every rule below cites the glibc function it
reproduces (Debian 12, glibc 2.36-9+deb12u14); see also /work/notes/glibc-resolver.md.

- Parsers, each a pure function of a file's text: `parse_hosts`, `parse_resolv_conf`,
  `parse_nsswitch`, `parse_host_conf`, `parse_gai_conf`.
- `lookup_hosts`: glibc's ``files`` module for one address family.
- `load` / `ConfigLoader`: a `SystemConfig` snapshot, reloaded as glibc reloads (stat
  based, at most once per `CHECK_INTERVAL`), or `Unsupported` with the reasons the
  engine must use the system's ``getaddrinfo`` instead.
- `SearchWalk`: the search-list walk of ``__res_context_search``, as a state machine.
- `schedule` and the reply rules: the send schedule of ``__res_context_send``.
- `check_name`: ``res_hnok``, checked before any query.

Texts are `str`; `load` decodes files as UTF-8 with ``surrogateescape`` so every byte
round-trips. Only ASCII is case-folded and only ASCII white space separates fields, as
in glibc under the C or a UTF-8 locale (a legacy 8-bit locale would fold more).
"""

from __future__ import annotations

import errno as _errno
import functools
import io
import math
import os
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

__all__ = [
    "CHECK_INTERVAL",
    "DEFAULT_PATHS",
    "HEADER_SIZE",
    "MAXNS",
    "SERVER_ERROR_RCODES",
    "TCP_TIMEOUT",
    "ConfigLoader",
    "ErrorReplyAction",
    "GaiConf",
    "HostConf",
    "HostsEntry",
    "HostsFile",
    "Nameserver",
    "NssSource",
    "NsswitchConf",
    "Outcome",
    "Paths",
    "ReplyVerdict",
    "ResolvConf",
    "SearchWalk",
    "SystemConfig",
    "TimeoutAction",
    "Unsupported",
    "check_name",
    "classify_udp_reply",
    "inet_aton_exact",
    "inet_pton4",
    "inet_pton6",
    "load",
    "lookup_hosts",
    "next_rotate_offset",
    "on_error_reply",
    "on_timeout",
    "parse_gai_conf",
    "parse_host_conf",
    "parse_hosts",
    "parse_nsswitch",
    "parse_resolv_conf",
    "question_match_skipped",
    "schedule",
    "server_timeout",
    "tcp_fallback",
]

# --- Constants (resolv/resolv.h, arpa/nameser.h) ------------------------------------

#: Name servers used: only the first three listed (``MAXNS``, ``update_from_conf``).
MAXNS: Final = 3
RES_MAXNDOTS: Final = 15
RES_MAXRETRANS: Final = 30
RES_MAXRETRY: Final = 5
RES_TIMEOUT: Final = 5
RES_DFLRETRY: Final = 2
NAMESERVER_PORT: Final = 53
#: ``NS_MAXDNAME``: the longest name text ``__res_context_querydomain`` accepts (+1).
MAXDNAME: Final = 1025
#: ``NS_MAXCDNAME``: the longest name in wire form.
MAXCDNAME: Final = 255
#: A DNS header.
HEADER_SIZE: Final = 12

#: How often `ConfigLoader` stats the reloadable files, in seconds. glibc stats
#: resolv.conf and nsswitch.conf on every lookup and reads /etc/hosts on every lookup;
#: a ``stat`` per lookup would cost more than a cached lookup itself, so an edit is
#: seen up to this long after it is made (glibc sees it on the next call). Read at each
#: check, so tests may monkeypatch it.
CHECK_INTERVAL: float = 1.0

#: TCP exchanges have no timeout in glibc (``send_vc`` reads block) [notes §5].
TCP_TIMEOUT: Final = math.inf

# h_errno values (netdb.h).
HOST_NOT_FOUND: Final = 1
TRY_AGAIN: Final = 2
NO_RECOVERY: Final = 3
NO_DATA: Final = 4

# rcodes.
_NOERROR, _FORMERR, _SERVFAIL, _NXDOMAIN, _NOTIMP, _REFUSED = 0, 1, 2, 3, 4, 5
#: rcodes ``send_dg`` treats as this server's failure (SERVFAIL, NOTIMP, REFUSED).
SERVER_ERROR_RCODES: Final = frozenset({_SERVFAIL, _NOTIMP, _REFUSED})

# C's isspace() in the C and UTF-8 locales, and the blanks resolv.conf splits on.
_SPACE: Final = frozenset(" \t\n\v\f\r")
_BLANK: Final = frozenset(" \t")
_DIGITS: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_OCTAL: Final = frozenset("01234567")
_HOSTNAME_BYTES: Final = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """ASCII-only case folding, as ``strcasecmp`` in the C and UTF-8 locales."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _cstr(line: str) -> str:
    """A line as C sees it: up to the first NUL."""
    nul = line.find("\0")
    return line if nul < 0 else line[:nul]


def _lines(text: str) -> list[str]:
    """``getline``/``fgets`` lines, each with its ``\\n`` (the last may lack one)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _atoi(text: str) -> int:
    """C's ``atoi``: ``(int) strtol(text, NULL, 10)`` on an LP64 system (saturating at
    the 64-bit limits, then truncated to 32 bits)."""
    i, n = 0, len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    j = i
    while j < n and text[j] in _DIGITS:
        j += 1
    value = sign * int(text[i:j]) if j > i else 0
    value = max(-(2**63), min(2**63 - 1, value))
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


# --- Address parsing (resolv/inet_addr.c, resolv/inet_pton.c) -----------------------


def inet_pton4(text: str) -> bytes | None:
    """glibc's strict ``inet_pton(AF_INET)``: four decimal octets, no leading zeros."""
    octets: list[int] = []
    saw_digit = False
    for ch in text:
        if ch in _DIGITS:
            if saw_digit and octets[-1] == 0:
                return None
            if not saw_digit:
                if len(octets) == 4:
                    return None
                octets.append(0)
                saw_digit = True
            octets[-1] = octets[-1] * 10 + int(ch)
            if octets[-1] > 255:
                return None
        elif ch == "." and saw_digit:
            if len(octets) == 4:
                return None
            saw_digit = False
        else:
            return None
    if len(octets) < 4:
        return None
    return bytes(octets)


def inet_pton6(text: str) -> bytes | None:
    """glibc's ``inet_pton(AF_INET6)`` (no ``%scope``; an embedded IPv4 part is strict)."""
    if not text:
        return None
    src = 0
    n = len(text)
    if text[0] == ":":
        src = 1
        if src == n or text[src] != ":":
            return None
    out = bytearray()
    colon_at: int | None = None
    curtok = src
    digits = 0
    val = 0
    while src < n:
        ch = text[src]
        src += 1
        if ch in _HEX:
            if digits == 4:
                return None
            val = (val << 4) | int(ch, 16)
            digits += 1
            continue
        if ch == ":":
            curtok = src
            if digits == 0:
                if colon_at is not None:
                    return None
                colon_at = len(out)
                continue
            if src == n or len(out) + 2 > 16:
                return None
            out += val.to_bytes(2, "big")
            digits = val = 0
            continue
        if ch == "." and len(out) + 4 <= 16:
            v4 = inet_pton4(text[curtok:])
            if v4 is not None:
                out += v4
                digits = 0
                break
        return None
    if digits:
        if len(out) + 2 > 16:
            return None
        out += val.to_bytes(2, "big")
    if colon_at is not None:
        if len(out) == 16:
            return None
        out[colon_at:colon_at] = bytes(16 - len(out))
    if len(out) != 16:
        return None
    return bytes(out)


def _strtoul0(text: str, i: int) -> tuple[int, int]:
    """``strtoul(text + i, &end, 0)`` for text starting with a digit: (value, end)."""
    n = len(text)
    if text[i] == "0" and i + 1 < n and text[i + 1] in "xX":
        j = i + 2
        while j < n and text[j] in _HEX:
            j += 1
        if j > i + 2:
            return int(text[i + 2 : j], 16), j
        return 0, i + 1  # "0x" without a hex digit: the subject sequence is "0"
    if text[i] == "0":
        j = i + 1
        while j < n and text[j] in _OCTAL:
            j += 1
        return int(text[i:j], 8), j
    j = i
    while j < n and text[j] in _DIGITS:
        j += 1
    return int(text[i:j]), j


def inet_aton_exact(text: str) -> bytes | None:
    """glibc's ``__inet_aton_exact``: ``123``, ``127.1``, ``0x7f.1``, octal parts; no
    trailing characters at all (so ``1.2.3.4\\r`` fails)."""
    limits = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)
    parts: list[int] = []
    i, n = 0, len(text)
    while True:
        if i >= n or text[i] not in _DIGITS:
            return None
        val, i = _strtoul0(text, i)
        if val > 0xFFFFFFFF:
            return None
        if i < n and text[i] == ".":
            if len(parts) > 2 or val > 0xFF:
                return None
            parts.append(val)
            i += 1
        else:
            break
    if i != n or val > limits[len(parts)]:
        return None
    word = 0
    for index, part in enumerate(parts):
        word |= part << (24 - 8 * index)
    return (word | val).to_bytes(4, "big")


def _ntop(packed: bytes) -> str:
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, packed)


# --- check_name: res_hnok (resolv/res-name-checking.c, ns_name_pton.c) ---------------


# Both are pure functions of the name, asked for every lookup (twice for the name
# a client connects to again and again): cached, bounded.
@functools.lru_cache(maxsize=1024)
def _name_pton(name: str) -> bytes | None:
    """``ns_name_pton`` into a 255-byte buffer: the wire form, or None where glibc fails
    (empty label, label over 63, name over 255, bad or trailing escape)."""
    src = name.encode("utf-8", "surrogateescape")
    dst = bytearray(b"\0")  # dst[label] is the length byte of the current label
    label = 0
    eom = MAXCDNAME
    i, n = 0, len(src)
    escaped = False
    while i < n:
        c = src[i]
        i += 1
        if escaped:
            if 0x30 <= c <= 0x39:  # \DDD: exactly three digits, at most 255
                if i + 2 > n or not (0x30 <= src[i] <= 0x39 and 0x30 <= src[i + 1] <= 0x39):
                    return None
                value = (c - 0x30) * 100 + (src[i] - 0x30) * 10 + (src[i + 1] - 0x30)
                i += 2
                if value > 255:
                    return None
                c = value
            escaped = False
        elif c == 0x5C:  # backslash
            escaped = True
            continue
        elif c == 0x2E:  # dot
            length = len(dst) - label - 1
            if length & 0xC0 or label >= eom:
                return None
            dst[label] = length
            if i == n:  # fully qualified
                if length != 0:
                    if len(dst) >= eom:
                        return None
                    dst.append(0)
                if len(dst) > MAXCDNAME:
                    return None
                return bytes(dst)
            if length == 0 or src[i] == 0x2E:
                return None
            label = len(dst)
            dst.append(0)
            continue
        if len(dst) >= eom:
            return None
        dst.append(c)
    if escaped:
        return None
    length = len(dst) - label - 1
    if length & 0xC0 or label >= eom:
        return None
    dst[label] = length
    if length != 0:
        if len(dst) >= eom:
            return None
        dst.append(0)
    if len(dst) > MAXCDNAME:
        return None
    return bytes(dst)


@functools.lru_cache(maxsize=1024)
def check_name(name: str) -> bool:
    """glibc's ``res_hnok``, which nss_dns runs before any query (``check_name`` in
    ``_nss_dns_gethostbyname2_r`` and ``_4_r``; getaddrinfo without AI_CANONNAME reaches
    one of them for every family). False means EAI_NONAME with no query sent.

    The name must be printable ASCII (0x21-0x7e), pass ``ns_name_pton`` (no empty
    label, labels of at most 63 bytes, at most 255 in wire form), have labels of
    ``[A-Za-z0-9_-]`` only, and its first label must not start with ``-``. A trailing dot
    is allowed and ``.`` alone passes. Escapes are decoded first (``\\065`` is ``A``), so
    a name with a backslash can pass: its wire form is then not its text, and an engine
    whose encoder does not decode RFC 1035 escapes exactly as ``ns_name_pton`` does
    should hand such names to glibc.
    """
    if any(not "\x21" <= ch <= "\x7e" for ch in name):
        return False
    wire = _name_pton(name)
    if wire is None:
        return False
    if wire[0] > 0 and wire[1] == 0x2D:  # leading dash
        return False
    i = 0
    while wire[i]:
        if not set(wire[i + 1 : i + 1 + wire[i]]) <= _HOSTNAME_BYTES:
            return False
        i += 1 + wire[i]
    return True


# --- /etc/hosts (nss/nss_files/files-hosts.c, files-parse.c, nss_readline.c) ---------


_AF_UNSPEC: Final = int(socket.AF_UNSPEC)
_AF_INET: Final = int(socket.AF_INET)
_AF_INET6: Final = int(socket.AF_INET6)


@dataclass(frozen=True, slots=True)
class HostsEntry:
    """One usable line of /etc/hosts: its address (as glibc's AF_UNSPEC parse sees it:
    ``inet_pton(AF_INET)``, else ``inet_pton(AF_INET6)``), canonical name and aliases.
    ``address`` is the text ``inet_ntop`` gives; ``ipv4`` is what the line gives an
    AF_INET lookup (the address of an IPv4 line, the IPv4 address of a v4-mapped line,
    127.0.0.1 for exactly ``::1``, otherwise None: the line is skipped)."""

    family: int
    packed: bytes
    name: str
    aliases: tuple[str, ...] = ()
    address: str = field(default="", compare=False)
    ipv4: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, packed: bytes, name: str, aliases: tuple[str, ...] = ()) -> HostsEntry:
        if len(packed) == 4:
            text = _ntop(packed)
            return cls(socket.AF_INET, packed, name, aliases, text, text)
        ipv4: str | None = None
        if packed[:12] == bytes(10) + b"\xff\xff":  # v4-mapped
            ipv4 = _ntop(packed[12:])
        elif packed == bytes(15) + b"\x01":  # exactly ::1
            ipv4 = "127.0.0.1"
        return cls(socket.AF_INET6, packed, name, aliases, _ntop(packed), ipv4)

    def for_family(self, family: int) -> str | None:
        """The address this line gives a lookup of `family`, or None if the line is
        skipped for it (``parse_line`` in files-hosts.c)."""
        if family == _AF_INET:
            return self.ipv4
        if family == _AF_INET6:
            return self.address if self.family == _AF_INET6 else None
        return self.address


@dataclass(frozen=True, slots=True)
class HostsFile:
    """/etc/hosts, parsed. ``present`` is False when the file could not be opened (the
    files module then returns UNAVAIL; with the default actions that, like NOTFOUND,
    goes on to DNS)."""

    entries: tuple[HostsEntry, ...] = ()
    present: bool = True
    index: Mapping[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)


def _readline_fixup(line: str) -> str | None:
    """``__nss_readline``: strip leading white space, skip empty and ``#`` lines. The
    strip uses ``memmove(buf, p, strlen(p))``, which leaves the old tail of the buffer in
    place: the result is ``line[k:] + line[-k:]`` for k stripped characters (harmless
    before a newline; on an unterminated last line ``"  10.0.0.1 foo"`` it names
    ``foooo``)."""
    line = _cstr(line)
    k = 0
    while k < len(line) and line[k] in _SPACE:
        k += 1
    if k == len(line) or line[k] == "#":
        return None
    return line[k:] + line[len(line) - k :] if k else line


def _split_field(text: str, i: int) -> tuple[str, int]:
    """``STRING_FIELD(var, isspace, 1)``: a field up to white space, then past it."""
    j = i
    while j < len(text) and text[j] not in _SPACE:
        j += 1
    value = text[i:j]
    if j < len(text):
        j += 1
        while j < len(text) and text[j] in _SPACE:
            j += 1
    return value, j


def parse_hosts(text: str | None) -> HostsFile:
    """Parse /etc/hosts as glibc's files module does; None means the file is missing.

    A line is cut at the first ``#`` anywhere or at ``\\n``; fields are separated by
    runs of white space (address, canonical name, aliases); the address must pass the
    strict ``inet_pton`` (so ``127.1``, ``010.0.0.1`` and ``fe80::1%lo`` lines are
    skipped silently). A line with only an address has the canonical name ``""``.
    """
    if text is None:
        return HostsFile(present=False)
    entries: list[HostsEntry] = []
    index: dict[str, list[int]] = {}
    for raw in _lines(text):
        line = _readline_fixup(raw)
        if line is None:
            continue
        cut = min((p for p in (line.find("#"), line.find("\n")) if p >= 0), default=-1)
        if cut >= 0:
            line = line[:cut]
        address, i = _split_field(line, 0)
        packed = inet_pton4(address) or inet_pton6(address)
        if packed is None:
            continue
        name, i = _split_field(line, i)
        aliases = tuple(token for token in re.split(r"[ \t\n\v\f\r]+", line[i:]) if token)
        entry = HostsEntry.of(packed, name, aliases)
        number = len(entries)
        entries.append(entry)
        for key in dict.fromkeys(_lower(n) for n in (name, *aliases)):
            index.setdefault(key, []).append(number)
    return HostsFile(tuple(entries), True, {key: tuple(value) for key, value in index.items()})


def lookup_hosts(
    hosts: HostsFile | None, name: str, family: int, multi: bool
) -> tuple[str, ...] | None:
    """glibc's files module for `name` in one `family`: the addresses, or None for
    NOTFOUND (or UNAVAIL, file missing), meaning "go on to DNS".

    - AF_INET (``_nss_files_gethostbyname3_r``): IPv4 lines; v4-mapped IPv6 lines as
      their IPv4 address; exactly ``::1`` as 127.0.0.1; other IPv6 lines skipped.
    - AF_INET6: IPv6 lines only (a v4-mapped line stays IPv6); IPv4 lines skipped.
    - AF_UNSPEC (``_nss_files_gethostbyname4_r``): every line, each in its own family.

    Names match the canonical name or an alias, ASCII case-insensitively, as written
    (``localhost.`` does not match ``localhost``); no search domain is applied. With
    `multi` off only the first matching line of an acceptable family counts; with it
    on, every such line in file order, duplicates kept.
    """
    if hosts is None or not hosts.present:
        return None
    found: list[str] = []
    entries = hosts.entries
    family = int(family)
    for number in hosts.index.get(_lower(name), ()):
        address = entries[number].for_family(family)
        if address is None:
            continue
        found.append(address)
        if not multi:
            break
    return tuple(found) or None


# --- /etc/resolv.conf (resolv/res_init.c: res_vinit_1, res_setoptions) ---------------


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A name server: its address as ``inet_ntop`` writes it, port 53, and the scope
    of an IPv6 address (0 when none or when the scope could not be resolved)."""

    address: str
    family: int
    scope_id: int = 0
    port: int = NAMESERVER_PORT

    @property
    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.family == socket.AF_INET6:
            return (self.address, self.port, 0, self.scope_id)
        return (self.address, self.port)


#: The options that set a flag, in glibc's matching order: a token that starts with one
#: of these sets it (``single-request-reopen`` is tried before ``single-request``).
_FLAG_OPTIONS: Final = (
    ("rotate", "rotate"),
    ("edns0", "edns0"),
    ("single-request-reopen", "single-request-reopen"),
    ("single-request", "single-request"),
    ("no_tld_query", "no-tld-query"),
    ("no-tld-query", "no-tld-query"),
    ("no-reload", "no-reload"),
    ("use-vc", "use-vc"),
    ("trust-ad", "trust-ad"),
    ("no-aaaa", "no-aaaa"),
)
#: The options glibc 2.36 acts on, by canonical name (``no_tld_query`` is
#: ``no-tld-query``), for `ResolvConf.options_seen` and ``refuse_options``.
OPTION_NAMES: Final = frozenset({"ndots", "timeout", "attempts", *(n for _, n in _FLAG_OPTIONS)})


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """resolv.conf and the environment, as the resolver uses them.

    - ``nameservers``: the ones queried (at most `MAXNS`; 127.0.0.1 when none is usable).
    - ``search``: the search list as stored (a leading ``.`` is stripped when used; an
      empty element is the root).
    - ``ndots``: 0-15 (``_res.ndots`` is a 4-bit field: ``ndots:-1`` is 15).
    - ``timeout``: seconds, at most 30, may be 0 or negative (the wait is then 1 s).
    - ``attempts``: at most 5; 0 or negative means no query at all (EAI_AGAIN).
    - the flags set by ``options``; ``sortlist``: a ``sortlist`` line was present.
    - ``options_seen``: every option set, by its name in `OPTION_NAMES`.
    """

    nameservers: tuple[Nameserver, ...] = (Nameserver("127.0.0.1", socket.AF_INET),)
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout: int = RES_TIMEOUT
    attempts: int = RES_DFLRETRY
    rotate: bool = False
    edns0: bool = False
    single_request: bool = False
    single_request_reopen: bool = False
    no_tld_query: bool = False
    no_reload: bool = False
    use_vc: bool = False
    trust_ad: bool = False
    no_aaaa: bool = False
    sortlist: bool = False
    options_seen: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Options:
    ndots: int = 1
    timeout: int = RES_TIMEOUT
    attempts: int = RES_DFLRETRY
    seen: set[str] = field(default_factory=set)


def _setoptions(options: _Options, text: str) -> None:
    """``res_setoptions``: at each blank-separated token, the first option it starts
    with. The number of ``ndots:``, ``timeout:`` and ``attempts:`` is ``atoi`` of the
    rest of the text (so ``ndots: 5`` is 5: atoi skips the blank). Unknown tokens
    (``inet6``, ``debug``, ``no-check-names``, ...) are no-ops in 2.36."""
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _BLANK:
            i += 1
        rest = text[i:]
        if rest.startswith("ndots:"):
            value = _atoi(rest[6:])
            options.ndots = (value & 0xF) if value <= RES_MAXNDOTS else RES_MAXNDOTS
            options.seen.add("ndots")
        elif rest.startswith("timeout:"):
            options.timeout = min(_atoi(rest[8:]), RES_MAXRETRANS)
            options.seen.add("timeout")
        elif rest.startswith("attempts:"):
            options.attempts = min(_atoi(rest[9:]), RES_MAXRETRY)
            options.seen.add("attempts")
        else:
            for spelling, name in _FLAG_OPTIONS:
                if rest.startswith(spelling):
                    options.seen.add(name)
                    break
        while i < n and text[i] not in _BLANK:
            i += 1


def _default_ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def _scope_id(packed: bytes, scope: str, ifindex: Callable[[str], int]) -> int:
    """``__inet6_scopeid_pton``: an interface name (link-local and node/link-local
    multicast only) or a decimal number; on failure glibc leaves 0."""
    link_local = packed[0] == 0xFE and packed[1] & 0xC0 == 0x80
    mc_local = packed[0] == 0xFF and packed[1] & 0x0F in (1, 2)
    if link_local or mc_local:
        number = ifindex(scope)
        if number:
            return number
    if scope[:1] in _DIGITS:
        j = 0
        while j < len(scope) and scope[j] in _DIGITS:
            j += 1
        if j == len(scope) and int(scope) <= 0xFFFFFFFF:
            return int(scope)
    return 0


def _keyword(line: str, name: str) -> str | None:
    """``MATCH``: the line starts with the keyword and a blank; the rest, or None."""
    if line.startswith(name) and line[len(name) : len(name) + 1] in ("\t", " "):
        return line[len(name) :]
    return None


def _search_elements(text: str) -> list[str]:
    """The search-list split of res_vinit_1: the first element starts at once (it may
    be empty), each later one at a non-blank after a blank."""
    parts = re.split(r"[ \t]+", text)
    return [parts[0], *(part for part in parts[1:] if part)]


def _nameserver(rest: str, ifindex: Callable[[str], int]) -> Nameserver | None:
    """The ``nameserver`` line's first token: ``inet_aton_exact``, else IPv6 with an
    optional ``%scope`` (an unknown scope leaves 0); None when neither parses."""
    token = re.split(r"[ \t\n]", rest.lstrip(" \t"), maxsplit=1)[0]
    v4 = inet_aton_exact(token) if token else None
    if v4 is not None:
        return Nameserver(_ntop(v4), socket.AF_INET)
    address, percent, scope = token.partition("%")
    v6 = inet_pton6(address) if address else None
    if v6 is None:
        return None
    return Nameserver(_ntop(v6), socket.AF_INET6, _scope_id(v6, scope, ifindex) if percent else 0)


def parse_resolv_conf(
    text: str | None,
    environ: Mapping[str, str] | None = None,
    hostname: str = "",
    ifindex: Callable[[str], int] = _default_ifindex,
) -> ResolvConf:
    """Parse resolv.conf (None: missing or unreadable) with `environ`'s LOCALDOMAIN and
    RES_OPTIONS and the machine's `hostname`, as ``res_vinit_1`` does.

    - Only ``;`` or ``#`` in column 0 starts a comment; a keyword must start the line and
      be followed by a blank (`` nameserver x`` is ignored); unknown keywords are ignored.
    - ``nameserver``: see `_nameserver`; bad ones are skipped; only the first 3 are used;
      none usable means 127.0.0.1 (not ::1).
    - ``domain d`` and ``search d ...``: the last such line wins (one with nothing after
      the keyword is ignored); ``domain`` keeps its first word only. With neither, the
      search list is the host name after its first dot (``host.`` gives the root).
      ``LOCALDOMAIN`` (even empty: the root only) replaces both; a leading blank in it
      makes an empty first element, the root.
    - ``options``, then RES_OPTIONS after everything else: see `_setoptions`.
    """
    env = environ if environ is not None else {}
    options = _Options()
    nameservers: list[Nameserver] = []
    search: list[str] | None = None
    localdomain = env.get("LOCALDOMAIN")
    if localdomain is not None:
        search = _search_elements(localdomain.split("\n", 1)[0])
    sortlist = False
    for raw in _lines(text or ""):
        line = _cstr(raw)
        if line[:1] in (";", "#"):
            continue
        if (rest := _keyword(line, "domain")) is not None:
            rest = rest.lstrip(" \t")
            if localdomain is None and rest[:1] not in ("", "\n"):
                search = [re.split(r"[ \t\n]", rest, maxsplit=1)[0]]
        elif (rest := _keyword(line, "search")) is not None:
            rest = rest.lstrip(" \t")
            if localdomain is None and rest[:1] not in ("", "\n"):
                search = _search_elements(rest.split("\n", 1)[0])
        elif (rest := _keyword(line, "nameserver")) is not None:
            server = _nameserver(rest, ifindex)
            if server is not None:
                nameservers.append(server)
        elif _keyword(line, "sortlist") is not None:
            sortlist = True
        elif (rest := _keyword(line, "options")) is not None:
            _setoptions(options, rest)
    if not nameservers:
        nameservers.append(Nameserver("127.0.0.1", socket.AF_INET))
    if search is None:
        dot = hostname.find(".")
        search = [hostname[dot + 1 :]] if dot >= 0 else []
    env_options = env.get("RES_OPTIONS")
    if env_options is not None:
        _setoptions(options, env_options)
    seen = options.seen
    return ResolvConf(
        nameservers=tuple(nameservers[:MAXNS]),
        search=tuple(search),
        ndots=options.ndots,
        timeout=options.timeout,
        attempts=options.attempts,
        rotate="rotate" in seen,
        edns0="edns0" in seen,
        single_request="single-request" in seen,
        single_request_reopen="single-request-reopen" in seen,
        no_tld_query="no-tld-query" in seen,
        no_reload="no-reload" in seen,
        use_vc="use-vc" in seen,
        trust_ad="trust-ad" in seen,
        no_aaaa="no-aaaa" in seen,
        sortlist=sortlist,
        options_seen=frozenset(seen),
    )


# --- /etc/nsswitch.conf (nss/nss_database.c, nss/nss_action_parse.c) ----------------

_STATUSES: Final = ("success", "notfound", "unavail", "tryagain", "return")
_DEFAULT_ACTIONS: Final = ("return", "continue", "continue", "continue", "return")
#: The databases glibc 2.36 knows (nss/databases.def); a line for any other is ignored.
_DATABASES: Final = frozenset(
    {
        "aliases", "ethers", "group", "group_compat", "gshadow", "hosts", "initgroups",
        "netgroup", "networks", "passwd", "passwd_compat", "protocols", "publickey",
        "rpc", "services", "shadow", "shadow_compat",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NssSource:
    """One source of a database line and its actions, in the order of ``_STATUSES``:
    success, notfound, unavail, tryagain and the internal "return" status."""

    module: str
    actions: tuple[str, ...] = _DEFAULT_ACTIONS

    def action(self, status: str) -> str:
        return self.actions[_STATUSES.index(status.lower())]

    @property
    def default_actions(self) -> bool:
        return self.actions == _DEFAULT_ACTIONS

    def __str__(self) -> str:
        if self.default_actions:
            return self.module
        criteria = " ".join(
            f"{status.upper()}={action}"
            for status, action, default in zip(
                _STATUSES, self.actions, _DEFAULT_ACTIONS, strict=True
            )
            if action != default
        )
        return f"{self.module} [{criteria}]"


_DEFAULT_HOSTS: Final = (NssSource("files"), NssSource("dns"))


@dataclass(frozen=True, slots=True)
class NsswitchConf:
    """nsswitch.conf as it concerns host lookups.

    ``hosts`` is the effective source list: the last valid ``hosts`` line, else (no file,
    no such line) glibc's default ``files dns``. ``error`` describes a parse error in
    any known database's line: glibc's whole reload then fails and no source runs.
    """

    hosts: tuple[NssSource, ...] = _DEFAULT_HOSTS
    hosts_listed: bool = False
    error: str | None = None

    @property
    def standard(self) -> bool:
        """Exactly ``files dns`` with the default actions (what the engine reproduces)."""
        return self.error is None and self.hosts == _DEFAULT_HOSTS


def _parse_actions(line: str) -> list[NssSource] | None:
    """``nss_action_parse``: ``source [ [!]STATUS=ACTION ... ] ...``, or None on error."""
    sources: list[NssSource] = []
    i, n = 0, len(line)

    def skip_ws(i: int) -> int:
        while i < n and line[i] in _SPACE:
            i += 1
        return i

    while True:
        i = skip_ws(i)
        if i == n:
            return sources
        start = i
        while i < n and line[i] not in _SPACE and line[i] != "[":
            i += 1
        if i == start:  # "[" where a source name should be: the list ends here
            return sources
        module = line[start:i]
        actions = dict(zip(_STATUSES, ("continue",) * 5, strict=True))
        actions["success"] = actions["return"] = "return"
        i = skip_ws(i)
        if i < n and line[i] == "[":
            i = skip_ws(i + 1)
            while True:
                negate = i < n and line[i] == "!"
                if negate:
                    i += 1
                start = i
                while i < n and line[i] not in _SPACE and line[i] not in "=]":
                    i += 1
                status = _lower(line[start:i])
                if status not in ("success", "unavail", "notfound", "tryagain"):
                    return None
                i = skip_ws(i)
                if i >= n or line[i] != "=":
                    return None
                i = skip_ws(i + 1)
                start = i
                while i < n and line[i] not in _SPACE and line[i] not in "=]":
                    i += 1
                action = _lower(line[start:i])
                if action not in ("return", "continue", "merge"):
                    return None
                if negate:
                    saved = actions[status]
                    actions = dict.fromkeys(_STATUSES, action)
                    actions[status] = saved
                else:
                    actions[status] = action
                i = skip_ws(i)
                if i < n and line[i] == "]":
                    i += 1
                    break
        sources.append(NssSource(module, tuple(actions[s] for s in _STATUSES)))


def parse_nsswitch(text: str | None) -> NsswitchConf:
    """Parse nsswitch.conf (None: missing) as ``nss_database_reload`` does.

    - Lines come from ``getline`` and a last line without ``\\n`` is dropped (the loop
      stops at end of file before processing it).
    - Leading white space is skipped; the database name runs up to white space or
      ``:`` and is case-sensitive; then every white space and ``:`` is skipped (so
      ``hosts files`` counts). ``#`` is not special inside a line.
    - The last line of a database wins. A parse error in any known database's line makes
      the whole file fail (``error``).
    """
    listed: list[NssSource] | None = None
    error: str | None = None
    raw_lines = _lines(text or "")
    if raw_lines and not raw_lines[-1].endswith("\n"):
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, 1):
        line = _cstr(raw)
        i = 0
        while i < len(line) and line[i] in _SPACE:
            i += 1
        start = i
        while i < len(line) and line[i] not in _SPACE and line[i] != ":":
            i += 1
        if i == len(line) or i == start:
            continue
        database = line[start:i]
        while i < len(line) and (line[i] in _SPACE or line[i] == ":"):
            i += 1
        if database not in _DATABASES:
            continue
        sources = _parse_actions(line[i:])
        if sources is None:
            error = f"line {number}: cannot parse {line.rstrip()!r}"
            break
        if database == "hosts":
            listed = sources
    if error is not None:
        return NsswitchConf(hosts=(), hosts_listed=listed is not None, error=error)
    if listed is None:
        return NsswitchConf()
    return NsswitchConf(hosts=tuple(listed), hosts_listed=True)


# --- /etc/host.conf (resolv/res_hconf.c) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class HostConf:
    """host.conf: ``multi`` (off when the file is missing; Debian ships ``multi on``) and
    ``reorder``. (``trim`` affects reverse lookups only and ``order`` is ignored.)"""

    multi: bool = False
    reorder: bool = False


def _hconf_bool(args: str) -> bool | None:
    """``arg_bool``: ``on`` or ``off`` as a case-insensitive prefix (``onion`` is on)."""
    if _lower(args[:2]) == "on":
        return True
    if _lower(args[:3]) == "off":
        return False
    return None


def parse_host_conf(text: str | None) -> HostConf:
    """Parse host.conf (None: missing) as ``do_init`` does: ``fgets`` into a 256-byte
    buffer (a longer line is parsed as several), one keyword per line compared
    case-insensitively (``order`` is ignored), the argument after white space."""
    flags = {"multi": False, "reorder": False}
    data = (text or "").encode("utf-8", "surrogateescape")
    chunks: list[str] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + 255)
        end = end + 1 if end >= 0 else min(pos + 255, len(data))
        chunks.append(data[pos:end].decode("utf-8", "surrogateescape"))
        pos = end
    for chunk in chunks:
        line = _cstr(chunk.split("\n", 1)[0])
        i = 0
        while i < len(line) and line[i] in _SPACE:
            i += 1
        if i == len(line) or line[i] == "#":
            continue
        start = i
        while i < len(line) and line[i] not in _SPACE and line[i] not in "#,":
            i += 1
        command = _lower(line[start:i])
        while i < len(line) and line[i] in _SPACE:
            i += 1
        args = line[i:]
        if command in flags:
            value = _hconf_bool(args)
            if value is not None:
                flags[command] = value
    return HostConf(multi=flags["multi"], reorder=flags["reorder"])


# --- /etc/gai.conf (sysdeps/posix/getaddrinfo.c: gaiconf_init) ------------------------


@dataclass(frozen=True, slots=True)
class GaiConf:
    """gai.conf's directives (``label``, ``precedence``, ``scopev4``, ``reload``), each as
    its line; none means RFC 3484's default tables, which the engine reproduces."""

    directives: tuple[str, ...] = ()


def parse_gai_conf(text: str | None) -> GaiConf:
    """The lines of gai.conf that ``gaiconf_init`` acts on: comments cut at ``#``, the
    command is the first word, compared case-sensitively; other words are ignored."""
    directives: list[str] = []
    for raw in _lines(text or ""):
        line = _cstr(raw).split("#", 1)[0]
        words = re.split(r"[ \t\n\v\f\r]+", line.strip(" \t\n\v\f\r"))
        if words[0] in ("label", "precedence", "scopev4", "reload"):
            directives.append(line.strip(" \t\n\v\f\r"))
    return GaiConf(tuple(directives))


# --- The snapshot and the loader ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paths:
    """Where the configuration lives (overridable for tests)."""

    hosts: str = "/etc/hosts"
    resolv_conf: str = "/etc/resolv.conf"
    nsswitch_conf: str = "/etc/nsswitch.conf"
    host_conf: str = "/etc/host.conf"
    gai_conf: str = "/etc/gai.conf"
    nscd_socket: str = "/var/run/nscd/socket"


DEFAULT_PATHS: Final = Paths()

#: The host.conf variables glibc 2.36 reads (``do_init``); any of them set → glibc.
RESOLV_ENVIRONMENT: Final = (
    "RESOLV_HOST_CONF",
    "RESOLV_MULTI",
    "RESOLV_REORDER",
    "RESOLV_ADD_TRIM_DOMAINS",
    "RESOLV_OVERRIDE_TRIM_DOMAINS",
)


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """A configuration the engine reproduces. ``resolv_generation`` changes whenever
    glibc would make a new resolv.conf object (the file's stat changed): state glibc
    keeps in a thread's ``_res`` until then (the sticky single-request modes of §5)
    should be reset when it changes."""

    resolv: ResolvConf
    hosts: HostsFile
    nsswitch: NsswitchConf
    host_conf: HostConf
    gai: GaiConf
    resolv_generation: int = 0

    @property
    def multi(self) -> bool:
        return self.host_conf.multi

    def lookup_hosts(self, name: str, family: int) -> tuple[str, ...] | None:
        """`lookup_hosts` with this snapshot's hosts file and ``multi``."""
        return lookup_hosts(self.hosts, name, family, self.host_conf.multi)


@dataclass(frozen=True, slots=True)
class Unsupported:
    """The engine must use the system's getaddrinfo: ``reasons`` says why."""

    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def __str__(self) -> str:
        return self.reason


# A file's identity for change detection (io/file_change_detection.c):
# None never matches (non-regular file, or a change seen while reading);
# ("empty",) for a missing or empty file (all such are equal, as in glibc);
# otherwise (size, inode, mtime ns, ctime ns). st_dev is not compared (glibc doesn't).
_Stamp = tuple[object, ...] | None
_IGNORED_OPEN_ERRORS: Final = frozenset(
    {_errno.EACCES, _errno.EISDIR, _errno.ELOOP, _errno.ENOENT, _errno.ENOTDIR, _errno.EPERM}
)


def _stamp_of(st: os.stat_result) -> _Stamp:
    if stat.S_ISDIR(st.st_mode):
        return ("empty",)
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size == 0:
        return ("empty",)
    return (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _stamp(path: str) -> _Stamp:
    try:
        return _stamp_of(os.stat(path))
    except OSError as exc:
        if exc.errno in _IGNORED_OPEN_ERRORS:
            return ("empty",)
        return None


def _unchanged(left: _Stamp, right: _Stamp) -> bool:
    return left is not None and right is not None and left == right


class _ReadError(Exception):
    pass


def _read(path: str) -> tuple[str | None, _Stamp]:
    """The file's text (None when it cannot be opened for one of the reasons glibc
    ignores: missing, permission, ...) and its stamp from the open file. Directories
    and other non-regular files raise `_ReadError` (glibc fails on a directory's read
    error; opening a FIFO could block, so they are told by a stat before the open)."""
    # The file object exists before its descriptor (as `_sockets.new_socket`'s
    # sockets do), so no interruption can come between the open and the close.
    file = io.FileIO.__new__(io.FileIO)
    try:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise _ReadError(f"{path}: not a regular file")
            io.FileIO.__init__(file, path, "r")
        except OSError as exc:
            if exc.errno in _IGNORED_OPEN_ERRORS - {_errno.EISDIR}:
                return None, ("empty",)
            raise
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _ReadError(f"{path}: not a regular file")
        chunks = []
        while chunk := file.read(65536):
            chunks.append(chunk)
    except OSError as exc:
        raise _ReadError(f"{path}: {exc.strerror}") from exc
    finally:
        file.close()
    return b"".join(chunks).decode("utf-8", "surrogateescape"), _stamp_of(st)


@dataclass(slots=True)
class _Tracked:
    """A reloadable file: its stamp when last read and what it gave."""

    stamp: _Stamp = None
    value: object = None
    error: str | None = None
    loaded: bool = False


class ConfigLoader:
    """Snapshots of the system configuration, reloaded as glibc reloads.

    - resolv.conf, /etc/hosts and nsswitch.conf are re-read when their stat (size,
      inode, mtime and ctime with nanoseconds; a missing file equals an empty one) has
      changed, and stat'ed at most once per `CHECK_INTERVAL` (glibc stats on every call
      and reads /etc/hosts every time: an edit shows here up to that much later).
    - host.conf, gai.conf and the ``RESOLV_*`` variables are read once, on first use
      (glibc reads host.conf once per process, gai.conf once without ``reload yes``).
    - LOCALDOMAIN and RES_OPTIONS are read when resolv.conf is (re)parsed, as in glibc.
    - HOSTALIASES and the nscd socket are checked at every stat check.
    - ``options no-reload`` makes glibc keep each thread's configuration for good;
      once seen, the loader answers `Unsupported` for the rest of its life.

    `get` is thread-safe; between checks it returns the same object without locking.
    ``refuse_options`` names resolv.conf options (see `OPTION_NAMES`) the engine does
    not implement: any of them set makes the configuration `Unsupported`.
    """

    def __init__(
        self,
        paths: Paths = DEFAULT_PATHS,
        *,
        environ: Mapping[str, str] | None = None,
        hostname: Callable[[], str] = socket.gethostname,
        ifindex: Callable[[str], int] = _default_ifindex,
        refuse_options: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unknown = set(refuse_options) - OPTION_NAMES
        if unknown:
            raise ValueError(f"unknown resolv.conf options: {sorted(unknown)}")
        self.paths = paths
        self._environ = environ
        self._hostname = hostname
        self._ifindex = ifindex
        self._refuse = frozenset(refuse_options)
        self._clock = clock
        self._lock = threading.Lock()
        self._current: SystemConfig | Unsupported | None = None
        self._next_check = -math.inf
        self._once: tuple[HostConf, GaiConf, list[str]] | None = None
        self._resolv = _Tracked()
        self._hosts = _Tracked()
        self._nsswitch = _Tracked()
        self._generation = 0
        self._no_reload_seen = False
        #: How many times each file was parsed (for tests and diagnostics).
        self.parses: dict[str, int] = {"resolv": 0, "hosts": 0, "nsswitch": 0, "once": 0}

    @property
    def environ(self) -> Mapping[str, str]:
        return self._environ if self._environ is not None else os.environ

    def get(self) -> SystemConfig | Unsupported:
        """The current snapshot (stat'ing the files if `CHECK_INTERVAL` has passed)."""
        current = self._current
        if current is not None and self._clock() < self._next_check:
            return current
        with self._lock:
            now = self._clock()
            if self._current is not None and now < self._next_check:
                return self._current
            self._current = self._refresh(self._current)
            self._next_check = now + CHECK_INTERVAL
            return self._current

    def _reload(self, tracked: _Tracked, path: str, parse: Callable[[str | None], object]) -> bool:
        """Re-read `path` if its stamp changed; whether anything changed."""
        before = _stamp(path)
        if tracked.loaded and _unchanged(before, tracked.stamp):
            return False
        try:
            text, after = _read(path)
        except _ReadError as exc:
            tracked.stamp, tracked.value, tracked.error = None, None, str(exc)
            tracked.loaded = True
            return True
        tracked.value, tracked.error, tracked.loaded = parse(text), None, True
        # The ABA guard of __resolv_conf_get_current: a change between the stat and the
        # read forces another read at the next check.
        tracked.stamp = after if _unchanged(before, after) else None
        return True

    def _parse_resolv(self, text: str | None) -> ResolvConf:
        self.parses["resolv"] += 1
        return parse_resolv_conf(text, self.environ, self._hostname(), self._ifindex)

    def _parse_hosts(self, text: str | None) -> HostsFile:
        self.parses["hosts"] += 1
        return parse_hosts(text)

    def _parse_nsswitch(self, text: str | None) -> NsswitchConf:
        self.parses["nsswitch"] += 1
        return parse_nsswitch(text)

    def _read_once(self) -> tuple[HostConf, GaiConf, list[str]]:
        self.parses["once"] += 1
        reasons: list[str] = []
        env = self.environ
        reasons += [f"environment: {name} is set" for name in RESOLV_ENVIRONMENT if name in env]
        try:
            host_conf = parse_host_conf(_read(self.paths.host_conf)[0])
        except _ReadError as exc:
            host_conf, reasons = HostConf(), [*reasons, f"host.conf: {exc}"]
        try:
            gai = parse_gai_conf(_read(self.paths.gai_conf)[0])
        except _ReadError as exc:
            gai, reasons = GaiConf(), [*reasons, f"gai.conf: {exc}"]
        if host_conf.reorder:
            reasons.append("host.conf: reorder on (glibc reorders AF_INET answers)")
        reasons += [f"gai.conf: {line!r} (only the default tables are reproduced)"
                    for line in gai.directives]  # fmt: skip
        return host_conf, gai, reasons

    def _refresh(self, previous: SystemConfig | Unsupported | None) -> SystemConfig | Unsupported:
        if self._once is None:
            self._once = self._read_once()
        host_conf, gai, reasons = self._once
        reasons = list(reasons)
        changed = previous is None
        if self._reload(self._resolv, self.paths.resolv_conf, self._parse_resolv):
            self._generation += 1
            changed = True
        changed |= self._reload(self._hosts, self.paths.hosts, self._parse_hosts)
        changed |= self._reload(self._nsswitch, self.paths.nsswitch_conf, self._parse_nsswitch)
        env = self.environ
        if "HOSTALIASES" in env:
            reasons.append("environment: HOSTALIASES is set")
        if os.path.lexists(self.paths.nscd_socket):
            reasons.append(f"nscd socket present: {self.paths.nscd_socket}")
        for tracked in (self._resolv, self._hosts, self._nsswitch):
            if tracked.error is not None:
                reasons.append(f"cannot read {tracked.error}")
        resolv = self._resolv.value
        if isinstance(resolv, ResolvConf):
            if resolv.no_reload:
                self._no_reload_seen = True
            if resolv.sortlist:
                reasons.append("resolv.conf: sortlist (glibc sorts A answers with it)")
            refused = sorted(resolv.options_seen & self._refuse)
            reasons += [f"resolv.conf: options {name} (not implemented)" for name in refused]
        if self._no_reload_seen:
            reasons.append(
                "resolv.conf: options no-reload (glibc freezes each thread's "
                "configuration at its first lookup; sticky for this process)"
            )
        nsswitch = self._nsswitch.value
        if isinstance(nsswitch, NsswitchConf):
            reasons += _nsswitch_reasons(nsswitch)
        if reasons:
            unsupported = Unsupported(tuple(reasons))
            return previous if previous == unsupported else unsupported
        if not changed and isinstance(previous, SystemConfig):
            return previous
        hosts = self._hosts.value
        assert isinstance(resolv, ResolvConf)
        assert isinstance(hosts, HostsFile)
        assert isinstance(nsswitch, NsswitchConf)
        return SystemConfig(resolv, hosts, nsswitch, host_conf, gai, self._generation)


def _nsswitch_reasons(conf: NsswitchConf) -> list[str]:
    if conf.error is not None:
        return [f"nsswitch.conf: {conf.error}: glibc runs no hosts source at all"]
    if conf.hosts_listed and not conf.hosts:
        return ["nsswitch.conf: empty hosts line (glibc 2.36 getaddrinfo crashes)"]
    if conf.standard:
        return []
    known = {"files", "dns"}
    unknown = [s.module for s in conf.hosts if s.module not in known]
    detail = " ".join(str(source) for source in conf.hosts)
    reason = f"nsswitch.conf: hosts: {detail} (only 'files dns' with default actions)"
    if unknown:
        reason += f"; unknown modules {unknown}"
    return [reason]


_LOADERS: dict[Paths, ConfigLoader] = {}
_LOADERS_LOCK = threading.Lock()
_DEFAULT_LOADER: list[ConfigLoader] = []  # the loader of DEFAULT_PATHS, once made


def load(paths: Paths = DEFAULT_PATHS) -> SystemConfig | Unsupported:
    """The process-wide snapshot for `paths` (one `ConfigLoader` per `Paths`, reading
    ``os.environ``): a `SystemConfig` to resolve with, or `Unsupported`."""
    if paths is DEFAULT_PATHS and _DEFAULT_LOADER:
        return _DEFAULT_LOADER[0].get()
    loader = _LOADERS.get(paths)
    if loader is None:
        with _LOADERS_LOCK:
            loader = _LOADERS.setdefault(paths, ConfigLoader(paths))
            if paths is DEFAULT_PATHS:
                _DEFAULT_LOADER.append(loader)
    return loader.get()


# --- The search walk (resolv/res_query.c: __res_context_search) ----------------------


class Outcome(Enum):
    """How one name's query ended, as the search walk needs it (for AF_UNSPEC, the A
    and AAAA exchange together, classified as ``__res_context_query`` does).

    - SUCCESS: a reply was NOERROR with answers (even if they yield no address).
    - NXDOMAIN: h_errno HOST_NOT_FOUND. NODATA: NO_DATA.
    - SERVFAIL: TRY_AGAIN and the rcode left in the first answer buffer is SERVFAIL
      (every server gave SERVFAIL over UDP): the walk goes on to the next search
      domain.
    - SERVFAIL_ANSWER: the same, but SERVFAIL came back as the answer, over TCP: the
      query got a reply, which only an AF_INET lookup's error tells (§9b).
    - TIMEOUT: TRY_AGAIN otherwise (the servers were reached or timed out; after a
      plain timeout the buffer's rcode is NOERROR): the walk stops searching.
    - REFUSED: TRY_AGAIN with REFUSED or NOTIMP left in the buffer (UDP error replies
      from every server): same effect as TIMEOUT.
    - OTHER: NO_RECOVERY (FORMERR; REFUSED or NOTIMP returned as the answer, over TCP;
      any other rcode): the walk stops searching.
    - CONNREFUSED: every server failed without a reply or a timeout (ICMP unreachable,
      ``connect`` failed, or no send at all when attempts <= 0), so ``errno`` is
      ECONNREFUSED. On a search-list name the lookup ends there with EAI_AGAIN; the
      as-is query does not look at errno, so after it the walk goes on, and the next
      search step ends it (even one that sends nothing). [errno staying ECONNREFUSED
      across a step that sends nothing is inferred from the code, not observed.]
    """

    SUCCESS = "success"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    SERVFAIL_ANSWER = "servfail-answer"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    OTHER = "other"
    CONNREFUSED = "connrefused"


_H_ERRNO: Final = {
    Outcome.NXDOMAIN: HOST_NOT_FOUND,
    Outcome.NODATA: NO_DATA,
    Outcome.SERVFAIL: TRY_AGAIN,
    Outcome.SERVFAIL_ANSWER: TRY_AGAIN,
    Outcome.TIMEOUT: TRY_AGAIN,
    Outcome.REFUSED: TRY_AGAIN,
    Outcome.CONNREFUSED: TRY_AGAIN,
    Outcome.OTHER: NO_RECOVERY,
}


#: Outcomes of a query no server replied to: res_send fails (errno ETIMEDOUT or
#: ECONNREFUSED), so nss_dns says UNAVAIL.
_SEND_FAILED: Final = frozenset(
    {Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.REFUSED, Outcome.CONNREFUSED}
)


def _absolute(name: str) -> str:
    """The name with a trailing (unescaped) dot."""
    if name.endswith("."):
        backslashes = len(name) - 1 - len(name[:-1].rstrip("\\"))
        if backslashes % 2 == 0:
            return name
    return name + "."


class SearchWalk:
    """The names glibc queries for one lookup, in order, given each one's outcome
    (``__res_context_search`` exactly; notes §7)::

        walk = SearchWalk(name, config)
        query = walk.first()
        while query is not None:
            query = walk.next(outcome_of(query))
        if not walk.succeeded: raise socket.gaierror(walk.error(), ...)

    - A name with at least ``ndots`` dots, or a trailing dot, is tried as is first; a
      trailing-dot name is never searched.
    - Then each search domain (a leading ``.`` stripped; an empty one is the root):
      NXDOMAIN and NODATA go on, SERVFAIL goes on, TIMEOUT, REFUSED and OTHER stop the
      search, CONNREFUSED ends the lookup (EAI_AGAIN).
    - Then the name as is, unless it was tried already or the root was in the list, or
      ``no-tld-query`` is set for a dotless name that was searched.
    - A candidate glibc cannot encode (an empty label, over 255 bytes) is not sent: it
      counts as NO_RECOVERY at once (so it stops the search), without calling you.

    Names are returned absolute (trailing dot), case kept; call `check_name` first
    (a failing name gives EAI_NONAME with no query). `first` returns None when no name
    at all can be sent.
    """

    def __init__(self, name: str, config: SystemConfig | ResolvConf) -> None:
        self.name = name
        self.resolv = config.resolv if isinstance(config, SystemConfig) else config
        #: The names handed out so far.
        self.queried: list[str] = []
        self._h = HOST_NOT_FOUND
        #: How the last query sent ended (None: nothing sent).
        self._last: Outcome | None = None
        self._connrefused = False
        self._servfail = False
        self._succeeded = False
        self._done = False
        self._gen = self._walk()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def succeeded(self) -> bool:
        return self._succeeded

    @property
    def h_errno(self) -> int:
        """The final h_errno (HOST_NOT_FOUND, TRY_AGAIN, NO_RECOVERY or NO_DATA)."""
        return self._h

    def first(self) -> str | None:
        if self.queried or self._done:
            raise RuntimeError("first() is called once, before next()")
        return self._advance(None)

    def next(self, outcome: Outcome) -> str | None:
        """The next name to query after `outcome` for the last one, or None when done."""
        if self._done or not self.queried:
            raise RuntimeError("next() follows first() and a returned name")
        return self._advance(outcome)

    def error(self, family: int = socket.AF_UNSPEC) -> int:
        """The ``socket.EAI_*`` code glibc returns for a lookup whose last source (dns)
        failed; 0 after a success.

        - AF_UNSPEC and AF_INET6 (``get_nss_addresses``, §9a): TRY_AGAIN → EAI_AGAIN,
          NO_DATA → EAI_NODATA, anything else → EAI_NONAME.
        - AF_INET (``try_simple_gethostbyname`` over ``gethostbyname2_r``, §9b): the
          status comes from the last query sent. If it got a reply, NO_DATA →
          EAI_NODATA and anything else → EAI_NONAME (so a timeout, then NXDOMAIN with
          the search suffix, is EAI_NONAME). If no server replied (timeout, error
          replies, refused), TRY_AGAIN → EAI_AGAIN, and anything else is the caller's
          ``errno`` made an EAI code: EAI_NONAME for 0, else EAI_NODATA, which is
          what a Python caller gets (its errno is hardly ever 0): EAI_NODATA here.
        """
        if not self._done:
            raise RuntimeError("the walk is not finished")
        if self._succeeded:
            return 0
        if family == socket.AF_INET and self._last not in _SEND_FAILED:
            return socket.EAI_NODATA if self._h == NO_DATA else socket.EAI_NONAME
        if family == socket.AF_INET and self._h != TRY_AGAIN:
            return socket.EAI_NODATA
        if self._h == TRY_AGAIN:
            return socket.EAI_AGAIN
        if self._h == NO_DATA:
            return socket.EAI_NODATA
        return socket.EAI_NONAME

    def _advance(self, outcome: Outcome | None) -> str | None:
        try:
            query = self._gen.send(outcome) if outcome is not None else next(self._gen)
        except StopIteration:
            self._done = True
            return None
        self.queried.append(query)
        return query

    def _query(self, name: str, domain: str | None) -> Generator[str, Outcome, bool]:
        """``__res_context_querydomain`` then ``__res_context_query``: whether it
        succeeded; h_errno and the ECONNREFUSED state are left on self."""
        size = len(name.encode("utf-8", "surrogateescape"))
        if domain is None:
            too_long = size - 1 >= MAXDNAME - 1 or size == 0
            text = name
        else:
            too_long = size + len(domain.encode("utf-8", "surrogateescape")) + 1 >= MAXDNAME
            text = f"{name}.{domain}"
        if too_long or _name_pton(text) is None:
            self._h = NO_RECOVERY  # res_mkquery failed: nothing sent, errno unchanged
            return False
        outcome = yield _absolute(text)
        self._last = outcome
        if outcome is Outcome.SUCCESS:
            self._succeeded = True
            return True
        self._h = _H_ERRNO[outcome]
        self._connrefused = outcome is Outcome.CONNREFUSED
        self._servfail = outcome in (Outcome.SERVFAIL, Outcome.SERVFAIL_ANSWER)
        return False

    def _walk(self) -> Generator[str, Outcome, None]:
        name, conf = self.name, self.resolv
        dots = name.count(".")
        trailing = name.endswith(".")
        saved: int | None = None
        tried_as_is = searched = root_seen = got_nodata = got_servfail = False
        if dots >= conf.ndots or trailing:
            if (yield from self._query(name, None)) or trailing:
                return
            saved = self._h
            tried_as_is = True
        if dots == 0 or not trailing:
            for element in conf.search:
                searched = True
                domain = element[1:] if element.startswith(".") else element
                root_seen |= domain == ""
                if (yield from self._query(name, domain)):
                    return
                if self._connrefused:
                    self._h = TRY_AGAIN
                    return
                if self._h == NO_DATA:
                    got_nodata = True
                elif self._h == HOST_NOT_FOUND:
                    pass
                elif self._h == TRY_AGAIN and self._servfail:
                    got_servfail = True
                else:
                    break
        bare_last = (dots or not searched or not conf.no_tld_query) and not (
            tried_as_is or root_seen
        )
        if bare_last and (yield from self._query(name, None)):
            return
        if saved is not None:
            self._h = saved
        elif got_nodata:
            self._h = NO_DATA
        elif got_servfail:
            self._h = TRY_AGAIN


# --- The send schedule (resolv/res_send.c: __res_context_send, send_dg) --------------


def server_timeout(config: SystemConfig | ResolvConf, ns: int) -> float:
    """Seconds ``send_dg`` waits for server `ns` (its index in the configuration, not
    its place in the round), for the whole exchange (both queries):
    ``timeout << ns``, divided by the number of servers when ``ns > 0`` (C division),
    at least 1 s. With timeout:2 and 3 servers: 2, 1, 2."""
    resolv = config.resolv if isinstance(config, SystemConfig) else config
    seconds = resolv.timeout << ns
    if ns > 0:
        seconds = int(seconds / len(resolv.nameservers))  # C truncates toward zero
    return float(max(seconds, 1))


def schedule(config: SystemConfig | ResolvConf, offset: int = 0) -> list[tuple[int, float]]:
    """Every send of one query, in order: (name-server index, seconds to wait for its
    answer), for all rounds (``for try < attempts: for shift < nscount``, server
    ``(shift + offset) % nscount``). `offset` is 0, or `next_rotate_offset` with
    ``rotate``. Empty when attempts <= 0: report `Outcome.CONNREFUSED` without sending.
    With ``use-vc``: one pass over TCP, each wait `TCP_TIMEOUT` (no timeout).

    What ends a server's turn before its time (notes §5): an error or lame reply (see
    `classify_udp_reply`, `on_error_reply`), an ICMP error or failed ``connect`` (next
    server at once, no wait), a reply shorter than a header. A truncated reply switches
    to TCP: see `tcp_fallback`. A timeout after one usable reply retries the same
    server: see `on_timeout`.
    """
    resolv = config.resolv if isinstance(config, SystemConfig) else config
    count = len(resolv.nameservers)
    # use-vc: the first send sets try = retry, so one pass (none when attempts <= 0).
    rounds = min(resolv.attempts, 1) if resolv.use_vc else resolv.attempts
    sends: list[tuple[int, float]] = []
    for _ in range(max(rounds, 0)):
        for shift in range(count):
            ns = (shift + offset) % count
            wait = TCP_TIMEOUT if resolv.use_vc else server_timeout(resolv, ns)
            sends.append((ns, wait))
    return sends


def tcp_fallback(sends: Sequence[tuple[int, float]], index: int, nscount: int) -> list[int]:
    """After send `index` of `sends` (from `schedule`) got a truncated (TC=1) UDP reply:
    the servers to ask over TCP, in order — the same server, then the others left in
    that pass, once each, each without a timeout; there is no further round
    (``try = statp->retry`` in ``__res_context_send``)."""
    end = (index // nscount + 1) * nscount
    return [ns for ns, _ in sends[index:end]]


class _RotateCounter:
    """glibc's ``global_offset``: a random start, then one step per send."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: int | None = None

    def take(self) -> int:
        with self._lock:
            if self._value is None:
                self._value = random.getrandbits(31)
            value = self._value
            self._value = (value + 1) & 0x7FFFFFFF
            return value


_ROTATE = _RotateCounter()


def next_rotate_offset(config: SystemConfig | ResolvConf) -> int:
    """``nameserver_offset``: 0 without ``rotate`` or with one server; otherwise a
    process-wide counter starting at a random value and advancing by one per
    ``__res_context_send`` (per name queried), modulo the number of servers."""
    resolv = config.resolv if isinstance(config, SystemConfig) else config
    count = len(resolv.nameservers)
    if count <= 1 or not resolv.rotate:
        return 0
    return _ROTATE.take() % count


class ReplyVerdict(Enum):
    """What ``send_dg`` makes of a UDP datagram that matched an outstanding query."""

    #: Shorter than a DNS header: this server fails (checked before matching).
    SHORT = "short"
    #: SERVFAIL, NOTIMP, REFUSED, or lame (NOERROR, no answer, AA=0, RA=0, no
    #: additional records): see `on_error_reply`.
    ERROR = "error"
    #: TC=1: resend both queries to the same server over TCP (`tcp_fallback`).
    TRUNCATED = "truncated"
    #: Store it (buffers fill in arrival order, not A/AAAA order).
    ANSWER = "answer"


def question_match_skipped(datagram: bytes) -> bool:
    """Whether ``send_dg`` skips the question check for this reply: exactly a header,
    qdcount 0, rcode SERVFAIL/NOTIMP/REFUSED (the ID must still match). Otherwise a
    reply must match an outstanding query's ID and question (name compared
    case-insensitively) or it is dropped and the wait goes on until the same deadline."""
    return (
        len(datagram) == HEADER_SIZE
        and int.from_bytes(datagram[4:6], "big") == 0
        and datagram[3] & 0x0F in SERVER_ERROR_RCODES
    )


def classify_udp_reply(datagram: bytes) -> ReplyVerdict:
    """The verdict on a UDP reply, in ``send_dg``'s order: size, (then the caller's
    ID/question match), error or lame, truncation. Over TCP nothing is filtered:
    SERVFAIL and REFUSED are returned as answers."""
    if len(datagram) < HEADER_SIZE:
        return ReplyVerdict.SHORT
    flags1, flags2 = datagram[2], datagram[3]
    rcode = flags2 & 0x0F
    aa, tc, ra = flags1 & 0x04, flags1 & 0x02, flags2 & 0x80
    ancount = int.from_bytes(datagram[6:8], "big")
    arcount = int.from_bytes(datagram[10:12], "big")
    if rcode in SERVER_ERROR_RCODES:
        return ReplyVerdict.ERROR
    if rcode == _NOERROR and ancount == 0 and not aa and not ra and arcount == 0:
        return ReplyVerdict.ERROR
    if tc:
        return ReplyVerdict.TRUNCATED
    return ReplyVerdict.ANSWER


class ErrorReplyAction(Enum):
    """What an ERROR reply does (``send_dg``, the ``thisansp_error`` branch)."""

    #: The other query's reply is already stored: return it alone.
    RETURN_OTHER = "return_other"
    #: Parallel A+AAAA: count this query as answered with no data, wait for the other.
    WAIT_OTHER = "wait_other"
    #: This server fails: go on to the next send of the schedule.
    NEXT_SERVER = "next_server"


def on_error_reply(*, other_received: bool, parallel: bool) -> ErrorReplyAction:
    """`other_received`: the other query got a usable reply from this server;
    `parallel`: two queries in flight at once (AF_UNSPEC without single-request)."""
    if other_received:
        return ErrorReplyAction.RETURN_OTHER
    if parallel:
        return ErrorReplyAction.WAIT_OTHER
    return ErrorReplyAction.NEXT_SERVER


class TimeoutAction(Enum):
    """What a server's deadline passing does (``send_dg``, ``n == 0``)."""

    #: Nothing usable: this server fails (errno ETIMEDOUT), next send of the schedule.
    NEXT_SERVER = "next_server"
    #: One usable reply: switch to single-request for good (until resolv.conf changes)
    #: and retry the same server with a new deadline; this uses up no attempt.
    RETRY_SINGLE_REQUEST = "retry_single_request"
    #: Again: switch to single-request-reopen (new socket for the second query) and
    #: retry the same server once more.
    RETRY_SINGLE_REQUEST_REOPEN = "retry_single_request_reopen"
    #: Again: return the one reply received.
    RETURN_ONE = "return_one"


def on_timeout(
    *, one_reply: bool, single_request: bool, single_request_reopen: bool
) -> TimeoutAction:
    """`one_reply`: a usable (not ERROR) reply is stored; the modes are the configured
    options or the sticky per-thread flags set by earlier timeouts."""
    if not one_reply:
        return TimeoutAction.NEXT_SERVER
    if not (single_request or single_request_reopen):
        return TimeoutAction.RETRY_SINGLE_REQUEST
    if not single_request_reopen:
        return TimeoutAction.RETRY_SINGLE_REQUEST_REOPEN
    return TimeoutAction.RETURN_ONE
