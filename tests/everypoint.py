"""A call interrupted at every point where a signal can land inside the engine.

`interrupt_at_every_point` runs a call again and again, interrupting it
(``KeyboardInterrupt``, as Ctrl-C raises) at its 1st, 2nd, 3rd... point inside the
engine, until one run reaches its end uninterrupted, and reports after which runs a
descriptor was left open, a ``ResourceWarning`` came (a socket dropped unclosed) or an
error other than the interruption was raised.

The points are where CPython (3.11 to 3.13) runs a signal handler: as a function
starts, and after a call into C returns (a builtin's, or a class's: ``__init__`` runs
inside the class call). A profile function sees those as "call", "c_return" and an
``__init__``'s or ``__new__``'s "return", and raises there; an exception from the
profile function drops the value just returned, as a signal there would. "Inside the
engine": some frame on the stack runs connectbyname's code (its ``testing`` toolkit
excepted), as in test_interrupt.py, and no frame of httpx's, httpcore's or anyio's comes
between it and the point (see `CLIENTS`). Not points:
- a Python function's return to a Python caller (the caller goes on without a check);
- a generator's yield or end (its caller's "c_return" of ``send()`` is the point), a
  generator expression resumed (one dropped unfinished is resumed by a throw, to be
  closed, where no signal is checked), and a coroutine resumed after ``await`` (no
  check there either; after a plain ``yield`` there is);
- backward jumps (they are points, but not seen by a profile function);
- ``threading.Thread.start``, a ``threading.Condition``'s ``__enter__`` and
  ``__exit__``, socket.py's close steps: not interruption-safe in CPython (see
  `UNSAFE`), nor httpcore's locks; and the import system (a module imported on first
  use, as an encoding is).
An interruption that lands in a finaliser (``__del__``, a weak reference callback) is
only reported ("exception ignored"), as a signal's would be, and the run goes on.
A trace function's "line" events are no model: one may raise where no signal can land
(between the end of a ``with`` body and its ``__exit__`` call, before a ``finally``
body's first call), and what it found there would be the test's own.

Only the calling thread is profiled, as only the main thread runs signal handlers.
"""

from __future__ import annotations

import dis
import http.client
import inspect
import os
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, Protocol

import anyio
import httpcore
import httpcore._synchronization
import httpx
import trio._socket

import connectbyname

PACKAGE = os.path.dirname(connectbyname.__file__) + os.sep
TOOLKIT = PACKAGE + "testing" + os.sep
#: Libraries whose own code holds state of its own under the engine's frames: httpx's
#: and httpcore's request machinery under the transport's handle_request (httpcore
#: keeps a new stream in a local until its connection object holds it, a stock one
#: too), and anyio's task groups and cancel scopes under the async driver (interrupted
#: inside, they leave trio's nursery stack corrupted). A point in their code is their
#: window; a call into them is still the engine's (see `_is_point`). urllib3's code
#: under the adapter's pool is counted: it bears interruptions (what it holds, it
#: closes), so the adapter's calls into it are tested too.
CLIENTS = tuple(
    os.path.dirname(module.__file__ or "") + os.sep for module in (httpcore, httpx, anyio)
)
#: CPython's own windows (see test_interrupt.py): Thread.start, and a Condition's
#: ``__enter__`` interrupted after it took its lock or ``__exit__`` before it let go
#: (held for good then, and the next ``with`` on it waits for ever: urllib3's pool
#: queue, say).
#: httpcore's locks are the same window in a client's code (its pool's lock held for
#: good, and the pool's close waits for ever).
#: And socket.py's close steps (trio's socket's too): interrupted in one (called by
#: http.client, say), what it was closing is left to the collector, and no caller can
#: help that. And http.client's HTTPResponse interrupted in its constructor (urllib3's
#: getresponse makes one): half-built, with no ``fp``, and its finalizer's close fails
#: on the missing attribute, which Python 3.13 reports (gh-62948; 3.11 and 3.12 were
#: silent). What it would have read is the connection's, which closes it.
#: A @contextmanager's ``__enter__`` interrupted after its generator yielded (CPython's
#: gh-74174: the ``with`` never resumes it) is not among them: under the engine's frames
#: it would be the engine's window (the httpx adapter's streams time out with cancel
#: scopes, not ``fail_after``, for that reason).
UNSAFE = {
    httpcore._synchronization.Lock.__enter__.__code__,
    httpcore._synchronization.Lock.__exit__.__code__,
    httpcore._synchronization.ThreadLock.__enter__.__code__,
    httpcore._synchronization.ThreadLock.__exit__.__code__,
    threading.Thread.start.__code__,
    threading.Condition.__enter__.__code__,
    threading.Condition.__exit__.__code__,
    socket.SocketIO.close.__code__,
    socket.socket.close.__code__,
    # Private, so not in typeshed.
    vars(socket.socket)["_decref_socketios"].__code__,
    vars(socket.socket)["_real_close"].__code__,
    # trio's socket close, the same steps (notify_closing, then the close).
    trio._socket._SocketType.close.__code__,
    http.client.HTTPResponse.__init__.__code__,
}
#: The import system's frames: a module imported on first use (an encoding, say) is
#: the import system's to read and close.
IMPORTS = "<frozen importlib"
_MANAGERS = frozenset({"__enter__", "__exit__", "__aenter__", "__aexit__"})
_RESUME = dis.opmap["RESUME"]
_QUIET: dict[CodeType, frozenset[int]] = {}


def _quiet_resumes(code: CodeType) -> frozenset[int]:
    """Where a frame of ``code`` resumes after ``await`` or ``yield from`` (RESUME's
    argument 2 or 3): CPython checks for signals when a frame starts or resumes after
    ``yield``, not there."""
    found = _QUIET.get(code)
    if found is None:
        raw = code.co_code
        found = _QUIET[code] = frozenset(
            offset
            for offset in range(0, len(raw), 2)
            if raw[offset] == _RESUME and (raw[offset + 1] & 3) >= 2
        )
    return found


# Code -> whose it is: the engine's (True), a client's (False), or neither (None).
_OWNERS: dict[CodeType, bool | None] = {}


class Closable(Protocol):
    def close(self) -> None: ...


def _owner(code: CodeType) -> bool | None:
    if code not in _OWNERS:
        file = code.co_filename
        if file.startswith(PACKAGE) and not file.startswith(TOOLKIT):
            _OWNERS[code] = True
        elif file.startswith(CLIENTS):
            _OWNERS[code] = False
        else:
            _OWNERS[code] = None
    return _OWNERS[code]


def _in_engine(frame: FrameType | None) -> bool:
    """Whether ``frame`` or one of its callers runs the engine's code, with no client's
    code in between (nor code known not to bear interruptions)."""
    while frame is not None:
        code = frame.f_code
        owner = _owner(code)
        if owner is not None:
            return owner
        if code in UNSAFE or code.co_filename.startswith(IMPORTS):
            return False
        frame = frame.f_back
    return False


def _is_point(frame: FrameType, event: str) -> bool:
    code = frame.f_code
    if event == "call":
        if code.co_name == "<genexpr>" or frame.f_lasti in _quiet_resumes(code):
            return False
        if _owner(code) is False:
            # Raised as a function starts, an interruption is its caller's to handle: a
            # client's function called by the engine starts at one of the engine's
            # points; but not a context manager's enter or exit, which interrupted as
            # it starts leaves the manager half done (a Condition's, in `UNSAFE`).
            return code.co_name not in _MANAGERS and _in_engine(frame.f_back)
        return _in_engine(frame)
    if event == "c_return":
        return _in_engine(frame)
    if event == "return":
        return (
            code.co_name in ("__init__", "__new__")
            and not code.co_flags & inspect.CO_GENERATOR
            and _in_engine(frame.f_back)
        )
    return False


def _name(frame: FrameType | None) -> str:
    return "?" if frame is None else f"{frame.f_code.co_qualname}:{frame.f_lineno}"


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def interrupt_at_every_point(
    run: Callable[[], Closable | None],
    *,
    before: Callable[[], None] = lambda: None,
    expected: tuple[type[BaseException], ...] = (),
    landing: Callable[[FrameType], bool] | None = None,
) -> dict[str, Any]:
    """Run ``run()`` (whose result, if any, is closed) interrupted at every point in
    turn, ``before()`` ahead of each run (to empty caches, say); errors of ``expected``
    types end a run as its result does. ``landing(frame)``: whether an interruption
    there is raised at all (trio defers one that lands in code it protects to its next
    checkpoint, itself a point). Returns the number of points and what was found
    (``leaks``, ``warned``, ``failed``: lists of strings naming the point)."""
    # An interruption that lands in a finaliser (a __del__, a weak reference callback,
    # run wherever an object is freed) is only reported, as a signal's would be, and
    # the run goes on. Anything else reported that way is a failure.
    reported: list[Any] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        return _every_point(run, before, expected, reported, landing)
    finally:
        sys.unraisablehook = previous_hook


def _every_point(
    run: Callable[[], Closable | None],
    before: Callable[[], None],
    expected: tuple[type[BaseException], ...],
    reported: list[Any],
    landing: Callable[[FrameType], bool] | None,
) -> dict[str, Any]:
    fds = _open_fds()
    leaks: list[str] = []
    warned: list[str] = []
    failed: list[str] = []
    where = ["not interrupted"]
    point = 0
    while True:
        point += 1
        where[0] = "not interrupted"
        before()
        count = 0

        def profile(frame: FrameType, event: str, arg: object, at: int = point) -> None:
            nonlocal count
            if not _is_point(frame, event) or (landing is not None and not landing(frame)):
                return
            count += 1
            if count == at:
                sys.setprofile(None)
                where[0] = f"{event} in {_name(frame)}"
                if not _owner(frame.f_code):
                    caller = frame.f_back
                    while caller is not None and not _owner(caller.f_code):
                        caller = caller.f_back
                    where[0] += f", called from {_name(caller)}"
                raise KeyboardInterrupt

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            result = None
            sys.setprofile(profile)
            try:
                result = run()
            except KeyboardInterrupt:
                pass
            except expected:
                pass
            except Exception as exc:
                failed.append(f"point {point} ({where[0]}): {exc!r}")
            finally:
                sys.setprofile(None)
            if result is not None:
                result.close()
            # (A run may end though interrupted: raised in a finaliser, which only
            # reports it.)
            ended = count < point
        warned += [f"point {point} ({where[0]}): {w.message}" for w in caught]
        failed += [
            f"point {point} ({where[0]}): {u.exc_value!r} reported in {u.object!r}"
            for u in reported
            if not isinstance(u.exc_value, KeyboardInterrupt)
        ]
        reported.clear()
        now_open = _open_fds()
        if now_open != fds:
            leaks.append(f"point {point} ({where[0]}): {sorted(now_open ^ fds)}")
            fds = now_open
        if ended:
            return {"points": point, "leaks": leaks, "warned": warned, "failed": failed}
