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

from ._events import OBSERVERS, CallListener, EventListener, joined, log_once, tell
from ._info import Connection
from ._parse import CallOptions, Options, Target
from ._race import Events, race

Race = Generator[float | None, Events, Connection]


def observed_race(
    target: Target, options: Options, call: CallOptions, *args: Any, **kwargs: Any
) -> Race:
    """`race`, with the listeners the observers make for this call told too."""
    # made_by(), written out: this runs on every call while an observer is installed,
    # most often to learn that it makes no listener (a span that does not record).
    made: list[CallListener] | None = None
    host, port = target.host, target.port
    # The list itself, not a copy: observe() replaces its items in one step, and an
    # observer added or removed meanwhile is simply asked or not.
    for observer in OBSERVERS:
        try:
            listener = observer.connect(host, port)
        except Exception:
            log_once(observer, "connect")
            continue
        if listener is not None:
            if made is None:
                made = [listener]
            else:
                made.append(listener)
    if made is None:
        return race(target, options, call, *args, **kwargs)
    own: list[EventListener] = [] if options.listener is None else [options.listener]
    options = dataclasses.replace(options, listener=joined([*own, *made]))
    return _watched(race(target, options, call, *args, **kwargs), made)


def _watched(loop: Race, made: list[CallListener]) -> Race:
    try:
        return (yield from loop)
    except BaseException as exc:
        # Each ignores this if it was told connect_finished already.
        for listener in made:
            tell(listener, "call_abandoned", exc)
        raise
