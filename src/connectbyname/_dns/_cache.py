"""Answers kept for their TTL: a bounded, thread-safe cache.

glibc keeps no cache (nscd or systemd-resolved may); every new connection by name then
costs a round trip to the nameserver. The engine's resolver keeps what it was told for
as long as the answer says (RFC 1035's TTL; RFC 2308 for "no such name" and "no such
record"), at most `MAX_TTL`, and at most `MAX_ENTRIES` names: the least recently used go
first. An answer with a TTL of 0 is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

#: The longest any answer is kept, whatever its TTL: a day, as many resolvers cap it.
MAX_TTL = 86_400.0
#: How many (name, type) answers are kept.
MAX_ENTRIES = 4096

_T = TypeVar("_T")


class TTLCache(Generic[_T]):
    """``(name, type) -> answer`` until the answer's TTL runs out."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int], tuple[float, _T]] = OrderedDict()

    def get(self, key: tuple[str, int], now: float) -> _T | None:
        """The answer for ``key`` if it has not expired by ``now``, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[str, int], answer: _T, ttl: float, now: float) -> None:
        """Keep ``answer`` for ``ttl`` seconds (at most `MAX_TTL`; not at all for 0)."""
        if ttl <= 0 or self._max <= 0:
            return
        with self._lock:
            self._entries[key] = (now + min(ttl, MAX_TTL), answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
