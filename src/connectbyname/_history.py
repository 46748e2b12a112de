"""Connection history: RFC 8305 section 4's "addresses used before".

Without a memory, every new connection to a host whose IPv6 path is broken pays the
attempt delay again. So the process remembers, per host and port, the address that
last won (it goes first next time) and the addresses that lost a race they had a head
start in (they go last for a while). A memory that turns out wrong is dropped at once:
if the remembered address fails or loses, the next race starts from scratch, so a wrong
memory costs at most one attempt delay.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from ._info import Address, Attempt, Outcome


class Hints(NamedTuple):
    """What the history says about a host and port: the address to try first (or
    ``None``) and the addresses to try last."""

    preferred: Address | None
    demoted: frozenset[Address]


NO_HINTS = Hints(None, frozenset())


class _Entry:
    __slots__ = ("demoted", "winner", "winner_until")

    def __init__(self) -> None:
        self.winner: Address | None = None
        self.winner_until = 0.0
        self.demoted: dict[Address, float] = {}


class ConnectionHistory:
    """A bounded, thread-safe memory of which addresses worked, keyed by host and port.

    ``max_entries`` bounds how many host/port pairs are kept (least recently used go
    first); ``ttl`` is how many seconds a winner stays preferred and a loser stays
    demoted. Pass one to ``connect_by_name(history=...)`` to keep a memory of your own;
    the default is a process-wide one.
    """

    def __init__(self, *, max_entries: int = 1024, ttl: float = 600.0) -> None:
        if max_entries < 1 or not ttl > 0:
            raise ValueError("max_entries must be at least 1 and ttl positive")
        self.max_entries = max_entries
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()

    def hints(self, host: str, port: int, now: float) -> Hints:
        """The address to try first (or ``None``) and the addresses to try last."""
        key = (host.lower(), port)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return NO_HINTS
            self._entries.move_to_end(key)
            winner = entry.winner if entry.winner_until > now else None
            demoted = frozenset(a for a, until in entry.demoted.items() if until > now)
            return Hints(winner, demoted)

    def record(self, host: str, port: int, attempts: Iterable[Attempt], now: float) -> None:
        """Learn from the attempts of one call to ``host`` and ``port``."""
        attempts = tuple(attempts)
        if not attempts:
            return
        winner = next((a for a in attempts if a.outcome is Outcome.CONNECTED), None)
        key = (host.lower(), port)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                if winner is None:
                    return
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            for attempt in attempts:
                if attempt.outcome in (Outcome.CONNECTED, Outcome.SKIPPED, Outcome.DENIED):
                    continue
                if attempt.address == entry.winner:
                    entry.winner = None  # a wrong memory is dropped at once
                # Losers that had a head start are the broken paths worth avoiding.
                lost = attempt.outcome in (Outcome.ABANDONED, Outcome.TIMED_OUT)
                if lost and (winner is None or attempt.start < winner.start):
                    entry.demoted[attempt.address] = now + self.ttl
            if winner is not None:
                entry.winner, entry.winner_until = winner.address, now + self.ttl
                entry.demoted.pop(winner.address, None)
            entry.demoted = {a: t for a, t in entry.demoted.items() if t > now}

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


#: The process-wide history used when ``history=True`` (the default).
DEFAULT_HISTORY = ConnectionHistory()
