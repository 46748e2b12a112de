"""An asyncio task cancelled at every step of the call leaves nothing behind.

The asyncio side of test_interrupt.py's every-point tests: there, ``KeyboardInterrupt``
lands at every point a signal can; here, ``Task.cancel()`` lands at every point a
cancellation can. A task running `aconnect_by_name` (or a request through httpx's
`AsyncConnectByNameTransport`) is cancelled after its 1st, 2nd, 3rd... step, then the
next run one step later, until a run ends before its cancellation came. After each
run: the outcome is the connection (closed here) or `asyncio.CancelledError`, never
another error, nor a cancellation swallowed (a result returned though the task was
cancelled, which would break ``asyncio.timeout`` and task groups); no descriptor is
open that was not before (``/proc/self/fd``), nor watched by the event loop's
selector; no `ResourceWarning`, no error reported by the loop or by a finaliser; no
task pending on the loop; no thread left but the lookup pool's, and that pool empty
within moments (its idle threads exit after a millisecond here).

A step is a step of an asyncio task: one ``send()`` into its coroutine, from a resume to
the next suspension. A cancellation reaches a task only where it is suspended, at an
``await`` that yields to the loop, so stepping through the suspensions of the call
reaches every place one can land. Each task the call starts (anyio's watcher tasks) is
counted too, through a task factory that wraps every new task's coroutine: cancelling
between any two steps of any of them covers the moments where a watcher saw its socket
ready but the call's task had not resumed yet. Three modes:

- ``between steps``: the call's task is cancelled right after the k-th step of any of
  the call's tasks, as ``Task.cancel()`` from elsewhere in the program would (the
  awaited future is cancelled, the task wakes with the error);
- ``as it wakes``: the call's task is cancelled when what it awaits at its own k-th
  suspension is done, before it resumes, so the result it waited for (a socket ready,
  a lookup's answer, a response's bytes) is never seen: the case where a cancellation
  drops a resource on the floor, if anything can;
- ``again and again``: cancelled after the k-th step and after every later one, as
  nested timeouts, or a task group and the code around it, cancel a task again while
  it cleans up: a clean-up that awaits must close everything all the same.

A thread's answer or the peer's may come a wait earlier or later from one run to the
next, so a step the call did not reach is tried again (`RETRIES`) up to the most steps
an uncancelled run took (of `UNCANCELLED_RUNS` first, and every run after); the lookups
take 50 ms, so that they come while the race waits for them on a loaded machine too
(with 2 ms, about 1 run in 10 found both answers there, a step short, idle or loaded).

Rejected: counting iterations of the event loop (``await asyncio.sleep(0)`` k times
before ``cancel()``). While the call waits for a timer (the attempt delay), a lookup
thread or the peer, the loop spins idle, so the walk would spend thousands of runs in
one state, and the iteration at which a thread's or the kernel's event arrives varies
from run to run, so k names no state; within one iteration several tasks step, so a
cancellation between iterations never lands between them. Rejected too: wrapping only
the call's own coroutine (the watchers' steps would be invisible), and a cancellation
before the first step (the coroutine never runs: nothing to test).

Every server is on loopback: a listening socket never accepted from (drained between
runs), a blackhole (a full accept queue) and a refused address on the same port, and for
TLS and httpx an HTTP(S) server in a child process, whose descriptors come and go
outside this process's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import socket
import ssl
import sys
import threading
import time
import types
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any, Literal, TypeVar

import httpx
import pytest
import trustme

from connectbyname import AsyncConnection, _resolve, aconnect_by_name
from connectbyname.adapters.httpx import AsyncConnectByNameTransport
from connectbyname.testing import Blackhole, StaticResolver, refused_port

from .test_interrupt import http_server_elsewhere as server_elsewhere

pytestmark = pytest.mark.slow

T = TypeVar("T")
Mode = Literal["between steps", "as it wakes", "again and again"]
MODES: tuple[Mode, ...] = ("between steps", "as it wakes", "again and again")
NAME = "example.test"
#: Runs at one step before it counts as one the call did not reach (see `_walk`).
RETRIES = 5
#: Uncancelled runs ahead of a walk, whose most steps the walk reaches for: an answer
#: that is there before it is waited for saves a step, so one run may take fewer.
UNCANCELLED_RUNS = 3


# --------------------------------------------------------------------------- stepping


@types.coroutine
def _stepping(
    coro: Coroutine[Any, Any, T], after_step: Callable[[object], None]
) -> Generator[Any, Any, T]:
    """Runs ``coro`` as the task would, telling ``after_step`` what each step yielded
    (a future the task now waits on, or ``None`` for a bare yield) before the task
    sees it."""
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        try:
            yielded = coro.send(sent) if thrown is None else coro.throw(thrown)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            # Kept, the error would keep its traceback's frames (and their sockets)
            # alive until the cyclic collector runs.
            thrown = None
        after_step(yielded)
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            thrown = exc


async def _counted(coro: Coroutine[Any, Any, T], after_step: Callable[[object], None]) -> T:
    # A real coroutine around the generator: anyio asks a task's coroutine for its
    # state (inspect.getcoroutinestate) before it cancels it.
    return await _stepping(coro, after_step)


@dataclasses.dataclass(eq=False)
class _Run:
    """One run of the call: which step cancels it (``at`` 0: none), and what was
    counted."""

    mode: Mode
    at: int
    task: asyncio.Task[Any] | None = None
    steps: int = 0  # of every task of the call
    own: int = 0  # of the call's task
    requested: bool = False

    def after_step(self, yielded: object) -> None:
        task = self.task
        if task is None or task.done():
            return
        self.steps += 1
        mine = asyncio.current_task() is task
        self.own += mine
        if not self.at:
            return
        if self.mode == "again and again" and self.steps >= self.at:
            self.requested = True
            task.cancel()
        elif self.requested:
            return
        elif self.mode == "between steps" and self.steps == self.at:
            self.requested = True
            task.cancel()
        elif self.mode == "as it wakes" and mine and self.own == self.at:
            self.requested = True
            if isinstance(yielded, asyncio.Future) and not yielded.done():
                # Added before the task's own wake-up callback, so it runs first: the
                # task resumes with the cancellation instead of what it waited for.
                yielded.add_done_callback(lambda _: task.cancel())
            else:
                task.cancel()


# --------------------------------------------------------------------------- the walk


@dataclasses.dataclass
class Scenario:
    """``start()``: the call's coroutine; ``finish(result)``: close what it made (the
    result, or ``None`` when it was cancelled); ``before()``: ahead of each run."""

    start: Callable[[], Coroutine[Any, Any, object]]
    finish: Callable[[object | None], Awaitable[None]]
    before: Callable[[], None] = lambda: None
    pool: _resolve._Pool | None = None


@dataclasses.dataclass
class Walk:
    uncancelled_steps: int = 0  # the most the uncancelled runs took, of every task
    uncancelled_own: int = 0  # and of the call's task
    points: int = 0  # steps at which a cancellation came
    runs: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _watched(loop: asyncio.AbstractEventLoop) -> set[int]:
    """The descriptors the loop's selector watches (the loop's own wake-up pipe too)."""
    selector = getattr(loop, "_selector", None)
    return set() if selector is None else set(selector.get_map())


def other_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name != "connectbyname-resolver"}


async def threads_and_fds_left(
    pool: _resolve._Pool | None,
    threads: set[threading.Thread],
    fds: set[str],
    sleep: Callable[[float], Awaitable[object]],
) -> tuple[list[str], set[str]]:
    """What a run left behind, on either event loop (``sleep`` its own): lookup threads
    still there 2 s on (the pool's idle ones exit within a millisecond here), threads
    not in ``threads``, descriptors not in ``fds``; and the descriptors now, for the
    next run's comparison."""
    problems = []
    deadline = time.monotonic() + 2
    while pool is not None and pool.threads() and time.monotonic() < deadline:
        await sleep(0.001)
    if pool is not None and pool.threads():
        problems.append(f"{pool.threads()} lookup threads still there")
    if left := other_threads() - threads:
        problems.append(f"threads left: {sorted(t.name for t in left)}")
    if (now := open_fds()) != fds:
        problems.append(f"descriptors changed: {sorted(now ^ fds)}")
    return problems, now


async def _walk(scenario: Scenario, mode: Mode) -> Walk:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    walk = Walk()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    current: list[_Run] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Future[Any]:
        if not current:
            return asyncio.Task(coro, loop=loop, **options)
        return asyncio.Task(_counted(coro, current[0].after_step), loop=loop, **options)

    loop.set_task_factory(factory)

    async def run_once(at: int) -> tuple[_Run, str]:
        run = _Run(mode, at)
        current[:] = [run]
        scenario.before()
        task = run.task = loop.create_task(scenario.start())
        try:
            await asyncio.wait([task])
        finally:
            current.clear()
        result: object | None = None
        if task.cancelled():
            outcome = "cancelled" if run.requested else "cancelled, not by the test"
        elif (error := task.exception()) is not None:
            outcome = f"failed: {error!r}"
        else:
            result = task.result()
            outcome = "cancellation swallowed" if run.requested else "completed"
        # Checked before anything else runs: the call's tasks end with it.
        pending = [t for t in asyncio.all_tasks() if t is not me]
        await scenario.finish(result)
        if pending:
            outcome += f"; tasks left pending: {pending}"
        return run, outcome

    gc.collect()
    fds, watched, threads = open_fds(), _watched(loop), other_threads()
    pool = scenario.pool

    async def left_behind() -> list[str]:
        nonlocal fds, watched
        problems, fds = await threads_and_fds_left(pool, threads, fds, asyncio.sleep)
        if (now_watched := _watched(loop)) != watched:
            problems.append(f"selector watches changed: {sorted(now_watched ^ watched)}")
            watched = now_watched
        return problems

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)

        async def checked_run(at: int) -> _Run:
            run, outcome = await run_once(at)
            walk.runs += 1
            kind = outcome.partition(";")[0]
            walk.outcomes[kind] = walk.outcomes.get(kind, 0) + 1
            problems = [] if outcome in ("cancelled", "completed") else [outcome]
            problems += await left_behind()
            problems += [f"{w.category.__name__}: {w.message}" for w in caught]
            caught.clear()
            problems += reported
            reported.clear()
            walk.problems += [f"step {at}: {p}" for p in problems]
            return run

        # Uncancelled (step 0), the first runs tell how many steps the call takes.
        firsts = [await checked_run(0) for _ in range(UNCANCELLED_RUNS)]
        walk.uncancelled_steps = max(run.steps for run in firsts)
        walk.uncancelled_own = max(run.own for run in firsts)
        if walk.problems or walk.outcomes != {"completed": UNCANCELLED_RUNS}:
            walk.problems.append(f"uncancelled: {walk.outcomes}")
            return walk
        reach = walk.uncancelled_own if mode == "as it wakes" else walk.uncancelled_steps
        limit = 3 * reach + 20
        for at in range(1, limit + 1):
            # A lookup thread's answer, or the peer's, may come a wait earlier or later
            # than in the first run, and the call end before step ``at``: up to the most
            # steps a run took, a step the call did not reach is tried again.
            for _ in range(RETRIES):
                run = await checked_run(at)
                if run.requested or at > reach:
                    break
                reach = max(reach, run.own if mode == "as it wakes" else run.steps)
            walk.points += run.requested
            if not run.requested and at > reach:
                return walk
    walk.problems.append(f"every run up to step {limit} was cancelled: no end to the walk")
    return walk


def walk_every_step(scenario: Scenario, mode: Mode, monkeypatch: pytest.MonkeyPatch) -> Walk:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    walk = asyncio.run(_walk(scenario, mode))
    walk.problems += [f"{u.exc_value!r} reported in {u.object!r}" for u in unraisable]
    return walk


# --------------------------------------------------------------------------- servers


@dataclasses.dataclass
class World:
    """A port served on 127.0.0.1 (never accepted from: drain it), blackholed on
    127.0.0.2 and refused on ::1, names for them, and a fresh lookup pool."""

    served: socket.socket
    port: int
    resolver: StaticResolver
    pool: _resolve._Pool

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.served.accept()[0].close()


@contextlib.contextmanager
def loopback_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # A pool of the test's own, whose idle threads exit at once: one still there after
    # a run is one the run left behind.
    pool = _resolve._Pool()
    monkeypatch.setattr(_resolve, "_pool", pool)
    monkeypatch.setattr(_resolve, "IDLE_SECONDS", 0.001)
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=4096))
        served.setblocking(False)
        port = served.getsockname()[1]
        stack.enter_context(Blackhole("127.0.0.2", port))
        stack.enter_context(refused_port("::1", port))
        resolver = StaticResolver(
            {
                "refused-v6.test": ["::1", "127.0.0.1"],
                "blackholed.test": ["127.0.0.2", "127.0.0.1"],
            },
            # The answers come once the race waits for them, so that a run walks the
            # lookups' wake-ups too (how runs still differ: the module's docstring).
            delay=0.05,
            record_calls=False,
        )
        yield World(served, port, resolver, pool)


@pytest.fixture(scope="module")
def web(
    server_cert: trustme.LeafCert, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """The ports of an HTTP and an HTTPS server in child processes, by scheme."""
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp("web")
        yield {
            "http": stack.enter_context(server_elsewhere(None, folder)),
            "https": stack.enter_context(server_elsewhere(server_cert, folder)),
        }


# --------------------------------------------------------------------------- scenarios


async def _close_connection(result: object | None) -> None:
    if result is not None:
        assert isinstance(result, AsyncConnection)
        await result.aclose()


def connect(world: World, host: str, port: int | None = None, **options: Any) -> Scenario:
    def start() -> Coroutine[Any, Any, object]:
        return aconnect_by_name(host, port or world.port, timeout=2, history=False, **options)

    return Scenario(start, _close_connection, world.drain, world.pool)


def httpx_get(world: World, url: str, context: ssl.SSLContext) -> Scenario:
    """One GET on a client of its own per run, made and closed outside the cancelled
    task, as a program that cancels a request and closes its client later."""
    names = StaticResolver({NAME: ["127.0.0.1"]}, record_calls=False)
    clients: list[httpx.AsyncClient] = []

    def start() -> Coroutine[Any, Any, object]:
        transport = AsyncConnectByNameTransport(
            verify=context, trust_env=False, resolver=names, history=False
        )
        clients.append(httpx.AsyncClient(transport=transport, timeout=5))
        return clients[-1].get(url)

    async def finish(result: object | None) -> None:
        try:
            if result is not None:
                assert isinstance(result, httpx.Response)
                assert result.status_code == 200
        finally:
            await clients.pop().aclose()

    return Scenario(start, finish, world.drain, world.pool)


SCENARIOS = [
    "literal",
    "refused ::1, then working",
    "blackholed, then working",
    "TLS",
    "httpx",
    "httpx, TLS",
]
#: The fewest cancellation points each walk must have reached, in either mode: a
#: loopback connect is over inside connect(), so a literal's call suspends only three
#: times (anyio's checkpoint, the task group's end, asyncio's transport made for the
#: stream); a blackhole's
#: watcher, a handshake and a request add theirs.
FEWEST_POINTS = {
    "literal": 3,
    "refused ::1, then working": 4,
    "blackholed, then working": 5,
    "TLS": 4,
    "httpx": 8,
    "httpx, TLS": 10,
}


def scenario_of(kind: str, world: World, web: dict[str, int], context: ssl.SSLContext) -> Scenario:
    """The call of scenario ``kind`` (one of `SCENARIOS`), on either event loop."""
    if kind == "literal":
        return connect(world, "127.0.0.1")
    if kind == "refused ::1, then working":
        return connect(world, "refused-v6.test", resolver=world.resolver)
    if kind == "blackholed, then working":
        return connect(world, "blackholed.test", resolver=world.resolver, attempt_delay=0.01)
    if kind == "TLS":
        names = StaticResolver({NAME: ["127.0.0.1"]}, record_calls=False)
        return connect(world, NAME, web["https"], resolver=names, ssl_context=context)
    scheme = "https" if kind == "httpx, TLS" else "http"
    return httpx_get(world, f"{scheme}://{NAME}:{web[scheme]}/", context)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", SCENARIOS)
def test_a_cancellation_at_every_step_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    mode: Mode,
    client_ssl_context: ssl.SSLContext,
    web: dict[str, int],
) -> None:
    # The servers are the module's, set up ahead of the check that each test closes
    # what it opened: every test asks for them.
    with loopback_world(monkeypatch) as world:
        scenario = scenario_of(kind, world, web, client_ssl_context)
        walk = walk_every_step(scenario, mode, monkeypatch)
    print(kind, mode, walk)  # shown if the test fails
    assert walk.problems == []
    assert walk.points >= FEWEST_POINTS[kind]
    assert walk.outcomes.get("cancelled", 0) == walk.points
