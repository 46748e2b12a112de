"""The race loop with the process's observers told (`connectbyname._events.Observer`).

The drivers start `race` itself while no observer is installed (``if OBSERVERS``: the
one thing an unobserved call pays), and `observed_race` otherwise. That asks each
observer for a listener of its own for this call, in the caller's thread or task (so
a listener can read the caller's context: the current span, for
``connectbyname.otel``), joins them to the call's own listener, and watches the race
so that a call that ends without ``connect_finished`` (cancelled, interrupted, an
error the race raises itself) still reaches the listeners made for it
(`CallListener.call_abandoned`). An observer that makes no listener for the call (a
tracer that does not sample it) leaves the plain race: no events are made.

Why here and not in ``check_options``: adapters check their options once, when they
are built, which may be before an observer is installed; and what an observer keeps
per call (a span) needs an object per call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

from ._events import OBSERVERS, CallListener, EventListener, joined, made_by, tell
from ._info import Connection
from ._parse import CallOptions, Options, Target
from ._race import Events, race

Race = Generator[float | None, Events, Connection]


def observed_race(
    target: Target, options: Options, call: CallOptions, *args: Any, **kwargs: Any
) -> Race:
    """`race`, with the listeners the observers make for this call told too."""
    made = made_by(OBSERVERS, "connect", target.host, target.port)
    if not made:
        return race(target, options, call, *args, **kwargs)
    own: list[EventListener] = [] if options.listener is None else [options.listener]
    listener = joined([*own, *made])
    options = dataclasses.replace(options, listener=listener)
    return _watched(race(target, options, call, *args, **kwargs), made)


def _watched(loop: Race, made: list[CallListener]) -> Race:
    try:
        return (yield from loop)
    except BaseException as exc:
        # Each ignores this if it was told connect_finished already.
        for listener in made:
            tell(listener, "call_abandoned", exc)
        raise
