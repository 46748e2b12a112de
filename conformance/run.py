"""Conformance harness: the released test suites of urllib3, requests and httpx, run
stock and with connectbyname injected, and every test whose outcome differs.

    .venv/bin/python conformance/run.py                 # all three, both modes
    .venv/bin/python conformance/run.py --client httpx  # one client (repeatable)
    .venv/bin/python conformance/run.py --mode injected # one mode (compared with the
                                                        # last run of the other, if any)

For each client it takes the version installed here (importlib.metadata), downloads its
sdist from PyPI (cached), extracts the tests, builds a venv of its own with the suite's
declared test requirements, the project (editable, ``[all]``) and exactly the installed
client releases, and runs pytest there inside a fresh network namespace with only
``lo`` up. Tests whose outcome differs are run again in both modes; those that flip even
stock are reported as flaky, the others are compared with expected-differences.txt.

Exit status: 0 no unexpected difference, 1 unexpected differences, 2 the harness or a
pytest run failed. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGINS = HERE / "plugins"
EXPECTED = HERE / "expected-differences.txt"
DEFAULT_CACHE = HERE / ".cache"
HARNESS_VERSION = "1"  # bump to rebuild every cached venv

#: The releases the venvs are pinned to, as installed here.
PINNED = ("urllib3", "requests", "httpx", "httpcore")
#: Added to every venv for the harness itself: a per-test timeout, so a hang in the
#: injected mode ends as a failure instead of stalling the run.
HARNESS_REQUIREMENTS = ("pytest-timeout",)
MODES = ("stock", "injected")
#: pytest exit statuses of a run that went through: all passed, some failed, none
#: selected (``-- -k`` that matches nothing in one suite).
PYTEST_FINISHED = (0, 1, 5)
#: Outcomes pytest reports, plus "absent": not collected in that run.
ABSENT = "absent"


@dataclasses.dataclass(frozen=True)
class Suite:
    """How to get, set up and run one client's released test suite."""

    name: str
    members: tuple[str, ...]  # what to extract from the sdist (paths under its root)
    test_paths: tuple[str, ...]
    extras: tuple[str, ...]  # the client's own extras the upstream test setup installs
    skipped: dict[str, str]  # requirement name -> why it is left out
    pytest_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    group: str | None = None  # the sdist's pyproject dependency group, if any
    plugins: tuple[str, ...] = ()  # pytest plugins of ours for this suite, both modes
    deselect: dict[str, str] = dataclasses.field(default_factory=dict)  # test id -> why
    constraints: tuple[str, ...] = ()  # pins beyond the clients'
    requirements_file: Path | None = None  # else a file of ours

    def requirements(self, sdist_root: Path, version: str) -> list[str]:
        """The suite's test requirements, tooling left out, the client pinned."""
        if self.group is not None:
            pyproject = tomllib.loads((sdist_root / "pyproject.toml").read_text("utf-8"))
            lines = _dependency_group(pyproject.get("dependency-groups", {}), self.group)
        else:
            assert self.requirements_file is not None
            lines = _requirement_lines(self.requirements_file.read_text("utf-8"))
        kept = [f"{self.name}[{','.join(self.extras)}]=={version}"]
        for line in lines:
            name = _requirement_name(line)
            if name in self.skipped:
                continue
            if name == self.name:  # e.g. requests' "requests[socks]": the release itself
                extras = re.search(r"\[([^\]]*)\]", line)
                kept.append(f"{self.name}[{extras.group(1) if extras else ''}]=={version}")
            else:
                kept.append(line)
        return kept


SUITES: dict[str, Suite] = {
    "urllib3": Suite(
        name="urllib3",
        members=("test", "dummyserver", "pyproject.toml"),
        test_paths=("test",),
        # noxfile.py tests_impl(): `uv sync --group dev --extra socks,brotli,zstd,h2`.
        group="dev",
        extras=("socks", "brotli", "zstd", "h2"),
        skipped={
            "coverage": "coverage measurement",
            "pytest-memray": "memory profiling (only used with --memray)",
            "build": "packaging tool",
            "towncrier": "changelog tool",
        },
        # noxfile.py's pytest flags, but pytest-socket's (--disable-socket,
        # --allow-hosts=...): the isolation plugin and the namespace do that here.
        pytest_args=("-ra", "--tb=native", "--strict-config", "--strict-markers"),
        env=(("PYTHONWARNINGS", "always::DeprecationWarning"),),
        # Its lock file takes Hypercorn from a git fork; plugins/cbn_urllib3_hypercorn.py
        # adds what the dummy servers need from it to this PyPI release.
        plugins=("cbn_urllib3_hypercorn",),
        constraints=("hypercorn==0.18.0",),
    ),
    "requests": Suite(
        name="requests",
        # requirements-dev.txt: test_requests.py posts it as a file.
        members=("tests", "pyproject.toml", "requirements-dev.txt"),
        test_paths=("tests",),
        group="test",  # pyproject [dependency-groups] test (requirements-dev.txt is older)
        extras=("socks",),
        skipped={"pytest-cov": "coverage measurement"},
        pytest_args=("-ra",),
    ),
    "httpx": Suite(
        name="httpx",
        # Not the sdist's httpx/ package: on sys.path beside tests/ it would shadow
        # the installed release.
        members=("tests", "pyproject.toml"),
        test_paths=("tests",),
        requirements_file=HERE / "requirements" / "httpx.txt",
        # Upstream requirements.txt: `-e .[brotli,cli,http2,socks,zstd]`.
        extras=("brotli", "cli", "http2", "socks", "zstd"),
        skipped={},
        pytest_args=("-rxXs",),
        deselect={
            "tests/client/test_proxies.py::test_async_proxy_close": "fetches http://example.com",
            "tests/client/test_proxies.py::test_sync_proxy_close": "fetches http://example.com",
        },
    ),
}


def _requirement_name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _dependency_group(groups: dict[str, Any], name: str) -> list[str]:
    """PEP 735: a group's requirements, its include-groups expanded."""
    out: list[str] = []
    for item in groups[name]:
        if isinstance(item, dict):
            out += _dependency_group(groups, item["include-group"])
        else:
            out.append(item)
    return out


# --------------------------------------------------------------------------- output


def say(message: str = "") -> None:
    print(message, flush=True)


class HarnessError(Exception):
    """The harness itself could not do its job (exit status 2)."""


def _run(cmd: Sequence[str | Path], log: Path | None = None, **kwargs: Any) -> None:
    """Run a set-up command; its output goes to ``log`` (shown if it fails)."""
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
        )
        out.seek(0)
        text = out.read()
    if log is not None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n{text}\n")
    if result.returncode != 0:
        tail = "\n".join(text.splitlines()[-30:])
        raise HarnessError(
            f"command failed ({result.returncode}): {' '.join(map(str, cmd))}\n{tail}"
        )


# --------------------------------------------------------------------------- set-up


def installed_versions() -> dict[str, str]:
    versions = {}
    for name in PINNED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise HarnessError(
                f"{name} is not installed in {sys.executable}: run this with the project's "
                "venv (.venv/bin/python), where the clients to test are installed"
            ) from None
    return versions


def fetch_sdist(name: str, version: str, cache: Path) -> Path:
    """The release's sdist from PyPI, downloaded once."""
    sdists = cache / "sdists"
    found = sorted(sdists.glob(f"{name}-{version}.tar.gz"))
    if found:
        return found[0]
    sdists.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sdists) as tmp:
        _run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"{name}=={version}", "--dest", tmp]
        )  # fmt: skip
        got = list(Path(tmp).glob("*.tar.gz"))
        if len(got) != 1:
            raise HarnessError(f"pip download {name}=={version}: expected one sdist, got {got}")
        target = sdists / f"{name}-{version}.tar.gz"
        got[0].replace(target)
    return target


def extract_suite(suite: Suite, sdist: Path, version: str, cache: Path) -> Path:
    """The sdist's test files (``suite.members``), extracted once."""
    digest = hashlib.sha256("\n".join(suite.members).encode()).hexdigest()[:8]
    target = cache / "suites" / f"{suite.name}-{version}-{digest}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if any(inner == m or inner.startswith(m + "/") for m in suite.members):
                members.append(member)
        if not members:
            raise HarnessError(f"{sdist.name}: none of {suite.members} in the sdist")
        tar.extractall(tmp, members=members, filter="data")
        (root,) = Path(tmp).iterdir()
        (root / ".complete").write_text(sdist.name)
        root.replace(target)
    return target


def ensure_venv(
    suite: Suite, requirements: list[str], versions: dict[str, str], cache: Path, log: Path
) -> Path:
    """The suite's venv: its test requirements, the project, the pinned releases."""
    constraints = [f"{name}=={version}" for name, version in versions.items()]
    constraints += suite.constraints
    pyproject = (REPO / "pyproject.toml").read_bytes()
    key_source = json.dumps(
        [HARNESS_VERSION, sys.version, str(REPO), requirements, constraints,
         list(HARNESS_REQUIREMENTS), hashlib.sha256(pyproject).hexdigest()]
    )  # fmt: skip
    key = hashlib.sha256(key_source.encode()).hexdigest()[:12]
    venvs = cache / "venvs"
    venv = venvs / f"{suite.name}-{key}"
    if (venv / ".complete").exists():
        return venv
    for old in venvs.glob(f"{suite.name}-*"):  # other keys: stale
        shutil.rmtree(old, ignore_errors=True)
    venvs.mkdir(parents=True, exist_ok=True)
    say(f"  {suite.name}: creating the venv {venv}")
    try:
        _run([sys.executable, "-m", "venv", venv], log)
        (venv / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (venv / "constraints.txt").write_text("\n".join(constraints) + "\n")
        python = venv / "bin" / "python"
        _run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", venv / "requirements.txt", "-c", venv / "constraints.txt",
             *HARNESS_REQUIREMENTS, "-e", f"{REPO}[all]"],
            log,
        )  # fmt: skip
        check_venv(python, versions)
        _run([python, "-m", "pip", "freeze", "--all"], venv / "freeze.txt")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / ".complete").write_text(key_source)
    return venv


def check_venv(python: Path, versions: dict[str, str]) -> None:
    """The venv has exactly the releases installed here, and connectbyname from REPO."""
    probe = (
        "import importlib.metadata as m, json, connectbyname, pathlib;"
        f"print(json.dumps([{{n: m.version(n) for n in {list(versions)!r}}},"
        " str(pathlib.Path(connectbyname.__file__).resolve())]))"
    )
    out = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    found, where = json.loads(out)
    if found != versions:
        raise HarnessError(f"{python}: versions {found} differ from the installed {versions}")
    if not Path(where).is_relative_to(REPO):
        raise HarnessError(f"{python}: connectbyname imports from {where}, not from {REPO}")


# --------------------------------------------------------------------------- isolation

_namespaces: set[str] = set()
_namespaces_lock = threading.Lock()
_processes: set[subprocess.Popen[bytes]] = set()


def check_namespaces_available() -> None:
    if os.geteuid() != 0:
        raise HarnessError(
            "network namespaces need root: the suites run in a namespace with only `lo` "
            "(CI runs as root)"
        )
    if shutil.which("ip") is None:
        raise HarnessError("`ip` (iproute2) not found: it makes the network namespaces")
    _delete_orphaned_namespaces()
    with network_namespace("probe"):
        pass


_NAMESPACE_PREFIX = "cbn-conformance-"


def _delete_orphaned_namespaces() -> None:
    """Namespaces (and /etc/netns folders) left by a run of this harness that was
    killed outright: those whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    with contextlib.suppress(OSError):
        names |= set(os.listdir("/etc/netns"))
    for name in sorted(names):
        pid = name.removeprefix(_NAMESPACE_PREFIX).split("-", 1)[0]
        if name.startswith(_NAMESPACE_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            _delete_namespace(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
    with _namespaces_lock:
        _namespaces.discard(name)


@atexit.register
def _delete_all_namespaces() -> None:
    for name in list(_namespaces):
        _delete_namespace(name)


_LOCALHOST = {"localhost", "localhost.", "ip6-localhost", "ip6-loopback"}


def _hosts_file() -> str:
    """This machine's hosts file with ``localhost`` given once per family (a name on two
    lines for one address makes getaddrinfo answer that address twice)."""
    try:
        machine = Path("/etc/hosts").read_text("utf-8").splitlines()
    except OSError:
        machine = []
    lines = []
    for line in machine:
        fields = line.split("#", 1)[0].split()
        names = [name for name in fields[1:] if name.lower() not in _LOCALHOST]
        if len(fields) < 2 or names == fields[1:]:
            lines.append(line)
        elif names:
            lines.append(" ".join([fields[0], *names]))
    return "\n".join(
        [
            *lines,
            "# conformance: a dual-stack localhost, and the FQDN form DNS would answer",
            "127.0.0.1 localhost localhost.",
            "::1 localhost localhost. ip6-localhost ip6-loopback",
            "",
        ]
    )


@contextlib.contextmanager
def network_namespace(tag: str) -> Iterator[str]:
    """A fresh network namespace with only ``lo`` up, deleted on the way out.

    ``ip netns exec`` puts the files of /etc/netns/NAME over /etc's: resolv.conf names
    127.0.0.1, where nothing listens, so lookups of names not in the hosts file fail at
    once; hosts is this machine's plus what a usual dual-stack host answers (and the
    suites check for before running their IPv6 and FQDN tests): ``localhost`` with ::1
    as well as 127.0.0.1, and ``localhost.``, which DNS resolvers answer."""
    name = f"{_NAMESPACE_PREFIX}{os.getpid()}-{tag}"
    with _namespaces_lock:
        _namespaces.add(name)
    try:
        try:
            _run(["ip", "netns", "add", name])
            etc = Path("/etc/netns") / name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            (etc / "hosts").write_text(_hosts_file())
            _run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        except HarnessError as exc:
            raise HarnessError(f"cannot make a network namespace: {exc}") from exc
        yield name
    finally:
        _delete_namespace(name)


# --------------------------------------------------------------------------- runs


@dataclasses.dataclass
class RunResult:
    client: str
    mode: str
    outcomes: dict[str, dict[str, Any]]
    exit_status: int | None  # pytest's, None if it did not finish
    seconds: float
    log: Path
    engine_calls: dict[str, int] = dataclasses.field(default_factory=dict)

    def outcome(self, test: str) -> str:
        record = self.outcomes.get(test)
        return record["outcome"] if record else ABSENT

    def reason(self, test: str) -> str:
        record = self.outcomes.get(test)
        return str(record.get("reason", "")) if record else ""


#: Stands for the run's copy of the suite in test ids (parametrized ids can hold paths).
SUITE_DIR = "{suite}"


def read_outcomes(
    path: Path, workdir: Path
) -> tuple[dict[str, dict[str, Any]], int | None, dict[str, int]]:
    """The tests' outcomes, pytest's exit status (None: the run did not finish) and the
    engine calls the injection counted, from the plugins' JSON lines."""
    outcomes: dict[str, dict[str, Any]] = {}
    finished = None
    engine_calls: dict[str, int] = {}
    if path.exists():
        for line in path.read_text("utf-8").splitlines():
            record = json.loads(line)
            if "session_finished" in record:
                finished = record["session_finished"]
            elif "engine_calls" in record:
                engine_calls = record["engine_calls"]
            else:
                record["id"] = record["id"].replace(str(workdir), SUITE_DIR)
                outcomes[record["id"]] = record
    return outcomes, finished, engine_calls


@dataclasses.dataclass(frozen=True)
class Job:
    suite: Suite
    mode: str
    suite_dir: Path
    venv: Path
    run_dir: Path
    tests: tuple[str, ...] | None  # None: the whole suite
    inject: str
    timeout: float
    per_test_timeout: float
    extra_args: tuple[str, ...]


def run_pytest(job: Job) -> RunResult:
    """One pytest run of a suite, in a namespace of its own, on a fresh copy of the suite."""
    shutil.rmtree(job.run_dir, ignore_errors=True)
    job.run_dir.mkdir(parents=True)
    workdir = job.run_dir / "suite"
    shutil.copytree(job.suite_dir, workdir)
    outcomes_path = job.run_dir / "outcomes.jsonl"
    log = job.run_dir / "pytest.log"
    plugins = ["-p", "cbn_isolation", "-p", "cbn_outcomes"]
    for plugin in job.suite.plugins:
        plugins += ["-p", plugin]
    if job.mode == "injected":
        plugins += ["-p", "cbn_inject"]
    tests: Sequence[str] = job.tests if job.tests is not None else job.suite.test_paths
    env = {
        key: value
        for key, value in os.environ.items()
        # Hermetic: no proxies from the caller's environment (trust_env tests read them).
        if not key.lower().endswith("_proxy") and not key.startswith(("PYTEST_", "CBN_"))
    }
    env.update(job.suite.env)
    env.update(
        PYTHONPATH=str(PLUGINS),
        CBN_CONFORMANCE_OUTCOMES=str(outcomes_path),
        CBN_CONFORMANCE_INJECT=job.inject,
        # urllib3's tests give slow machines longer timeouts when CI is set: the same
        # everywhere, so a local run and CI agree.
        CI="true",
    )
    cmd = [
        str(job.venv / "bin" / "python"), "-m", "pytest", *plugins,
        "-p", "no:cacheprovider", f"--timeout={job.per_test_timeout:g}",
        *job.suite.pytest_args, *job.extra_args,
        *(f"--deselect={test}" for test in job.suite.deselect),
        *(test.replace(SUITE_DIR, str(workdir)) for test in tests),
    ]  # fmt: skip
    started = time.monotonic()
    status: int | None = None
    with network_namespace(f"{job.suite.name}-{job.mode}") as ns, log.open("wb") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _processes.add(proc)
        try:
            status = proc.wait(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            out.write(f"\n[conformance] killed after {job.timeout:g} s\n".encode())
        finally:
            _stop(proc)
            _processes.discard(proc)
    outcomes, finished, engine_calls = read_outcomes(outcomes_path, workdir)
    return RunResult(
        client=job.suite.name,
        mode=job.mode,
        outcomes=outcomes,
        exit_status=status if finished is not None else None,
        seconds=time.monotonic() - started,
        log=log,
        engine_calls=engine_calls,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a pytest run we started, and what it started (its own process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_jobs(jobs: list[Job], workers: int) -> list[RunResult]:
    results: list[RunResult] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_pytest, job): job for job in jobs}
        try:
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                say(f"  {_describe(futures[future])}: {summarize(result)}")
                results.append(result)
        except BaseException:
            for future in futures:
                future.cancel()
            for proc in list(_processes):
                _stop(proc)
            raise
    return results


_FAILED = ("failed", "error", "xpassed")


def _describe(job: Job) -> str:
    if job.tests is not None:
        what = f"{len(job.tests)} tests again"
    else:
        what = "whole suite" if not job.extra_args else " ".join(job.extra_args)
    return f"{job.suite.name:8} {job.mode:8} ({what})"


def summarize(result: RunResult) -> str:
    counts: dict[str, int] = {}
    for record in result.outcomes.values():
        counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    parts = [f"{counts[k]} {k}" for k in sorted(counts)]
    status = "did not finish" if result.exit_status is None else f"exit {result.exit_status}"
    text = f"{', '.join(parts) or 'no tests'} in {result.seconds:.0f} s ({status})"
    if result.mode == "injected":
        text += f"; engine calls {sum(result.engine_calls.values())}"
    return text


# --------------------------------------------------------------------------- comparison


@dataclasses.dataclass
class Difference:
    client: str
    test: str
    stock: list[str]  # the outcome in each stock run
    injected: list[str]
    reason: str  # the injected run's (or the stock one's, if the injected passed)

    @property
    def key(self) -> str:
        return f"{self.client}:{self.test}"

    @property
    def flaky_stock(self) -> bool:
        return len(set(self.stock)) > 1

    @property
    def flaky_injected(self) -> bool:
        return len(set(self.injected)) > 1


def differing(stock: RunResult, injected: RunResult) -> list[str]:
    tests = set(stock.outcomes) | set(injected.outcomes)
    return sorted(t for t in tests if stock.outcome(t) != injected.outcome(t))


def load_expected(path: Path) -> dict[str, str]:
    """``client:test-id  # reason`` lines; blank lines and ``#`` comment lines skipped."""
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test, sep, reason = line.partition(" # ")
        test = test.strip()
        if not sep or not reason.strip() or ":" not in test:
            raise HarnessError(f"{path.name}:{number}: expected `client:test-id  # reason`")
        expected[test] = reason.strip()
    return expected


def saved_path(cache: Path, client: str, mode: str) -> Path:
    return cache / "results" / f"{client}-{mode}.json"


def harness_digest() -> str:
    """What the saved runs were made with: a saved run of another harness is not
    compared with."""
    digest = hashlib.sha256()
    for path in sorted([Path(__file__), *PLUGINS.glob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def save_result(cache: Path, result: RunResult, identity: dict[str, Any]) -> None:
    path = saved_path(cache, result.client, result.mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"identity": identity, "outcomes": result.outcomes, "exit_status": result.exit_status}
    path.write_text(json.dumps(data))


def load_saved(cache: Path, client: str, mode: str, identity: dict[str, Any]) -> RunResult | None:
    path = saved_path(cache, client, mode)
    if not path.exists():
        return None
    data = json.loads(path.read_text("utf-8"))
    if data.get("identity") != identity:
        return None
    return RunResult(client, mode, data["outcomes"], data["exit_status"], 0.0, path)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the released test suites of urllib3, requests and httpx stock "
        "and with connectbyname injected; print every test whose outcome differs."
    )
    parser.add_argument(
        "--client", action="append", choices=list(SUITES),
        help="run this client's suite (repeatable; default: all three)",
    )  # fmt: skip
    parser.add_argument(
        "--mode", choices=[*MODES, "both"], default="both",
        help="run one mode only; it is compared with the last saved run of the other "
        "mode for the same versions, if there is one (default: both)",
    )  # fmt: skip
    parser.add_argument(
        "--inject", default="urllib3,requests,httpx",
        help="which injections the injected mode applies (comma-separated; default all)",
    )  # fmt: skip
    parser.add_argument(
        "--reruns", type=int, default=1,
        help="run differing tests this many more times in each mode, to tell flaky "
        "tests (default: 1)",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, choices=(1, 2), default=2,
        help="pytest runs at once, one worker each (default: 2)",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path,
        default=Path(os.environ.get("CBN_CONFORMANCE_CACHE", DEFAULT_CACHE)),
        help="sdists, suites, venvs and run logs (default: conformance/.cache, or "
        "$CBN_CONFORMANCE_CACHE)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=1200,
        help="seconds a whole pytest run may take (default: 1200)",
    )  # fmt: skip
    parser.add_argument(
        "--test-timeout", type=float, default=120,
        help="seconds one test may take (pytest-timeout; default: 120)",
    )  # fmt: skip
    parser.add_argument(
        "--expected", type=Path, default=EXPECTED,
        help="the accepted differences (default: conformance/expected-differences.txt)",
    )  # fmt: skip
    parser.add_argument(
        "--strict-stale",
        action="store_true",
        help="fail (exit 1) on listed differences that no longer differ, too",
    )
    parser.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST-ARG",
        help="passed to every pytest run (e.g. -- -k timeout)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (CI's stop) unwinds like Ctrl-C: pytest runs stopped, namespaces deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _main(args)
    except HarnessError as exc:
        say(f"\nconformance: {exc}")
        return 2


def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    clients = args.client or list(SUITES)
    modes = list(MODES) if args.mode == "both" else [args.mode]
    cache: Path = args.cache_dir.resolve()
    versions = installed_versions()
    say("conformance: " + ", ".join(f"{n} {v}" for n, v in versions.items()))
    check_namespaces_available()
    expected = load_expected(args.expected)

    say("set-up (sdists, suites, venvs):")
    prepared: dict[str, tuple[Path, Path]] = {}
    for client in clients:
        suite = SUITES[client]
        t0 = time.monotonic()
        sdist = fetch_sdist(client, versions[client], cache)
        suite_dir = extract_suite(suite, sdist, versions[client], cache)
        requirements = suite.requirements(suite_dir, versions[client])
        cache.mkdir(parents=True, exist_ok=True)
        venv = ensure_venv(suite, requirements, versions, cache, cache / "setup.log")
        prepared[client] = (suite_dir, venv)
        say(f"  {client}: ready in {time.monotonic() - t0:.0f} s ({venv.name})")
    setup_seconds = time.monotonic() - started

    def job(client: str, mode: str, tests: tuple[str, ...] | None, tag: str) -> Job:
        suite_dir, venv = prepared[client]
        return Job(
            suite=SUITES[client], mode=mode, suite_dir=suite_dir, venv=venv,
            run_dir=cache / "runs" / f"{client}-{mode}{tag}", tests=tests,
            inject=args.inject, timeout=args.timeout,
            per_test_timeout=args.test_timeout, extra_args=tuple(args.pytest_args),
        )  # fmt: skip

    say("runs:")
    t0 = time.monotonic()
    # Both modes of a client side by side: they see the same load.
    first = run_jobs([job(c, m, None, "") for c in clients for m in modes], args.jobs)
    runs_seconds = time.monotonic() - t0
    results = {(r.client, r.mode): r for r in first}
    broken = [r for r in first if r.exit_status not in PYTEST_FINISHED]
    whole = not args.pytest_args
    for result in first:
        if whole and result.mode == "injected" and not any(result.engine_calls.values()):
            say(f"  {result.client}: the injected run made no connection through the engine")
            broken.append(result)

    def identity(client: str, mode: str) -> dict[str, Any]:
        return {
            "harness": harness_digest(),
            "versions": versions,
            "client": client,
            "inject": args.inject if mode == "injected" else None,
        }

    if whole:  # whole-suite runs are kept, to compare a later run of one mode with
        for result in first:
            save_result(cache, result, identity(result.client, result.mode))
    alone: list[RunResult] = []
    if len(modes) == 1:
        other = MODES[1 - MODES.index(modes[0])]
        for client in clients:
            saved = load_saved(cache, client, other, identity(client, other))
            if saved is None:
                say(f"  {client}: no saved {other} run of these versions and harness")
                alone.append(results[(client, modes[0])])
                continue
            say(f"  {client}: compared with the saved {other} run of the whole suite")
            if not whole:  # only the tests this run selected
                ran = results[(client, modes[0])].outcomes
                saved.outcomes = {t: o for t, o in saved.outcomes.items() if t in ran}
            results[(client, other)] = saved
    for result in alone:
        failed = sorted(t for t, o in result.outcomes.items() if o["outcome"] in _FAILED)
        say(f"\n{result.client} {result.mode}: {len(failed)} failed (nothing to compare with)")
        for test in failed:
            say(f"    {test}\n        {result.outcome(test)}: {result.reason(test)}")

    # Differences, then the differing tests again in both modes.
    differences: list[Difference] = []
    rerun_jobs: list[Job] = []
    first_diffs: dict[str, list[str]] = {}
    for client in clients:
        if (client, "stock") not in results or (client, "injected") not in results:
            continue
        stock, injected = results[(client, "stock")], results[(client, "injected")]
        first_diffs[client] = differing(stock, injected)
        # A test collected in one mode only cannot be named to the other's pytest.
        both = tuple(
            t for t in first_diffs[client] if t in stock.outcomes and t in injected.outcomes
        )
        if both and args.reruns > 0:
            for n in range(args.reruns):
                rerun_jobs += [job(client, m, both, f"-rerun{n + 1}") for m in MODES]
    t0 = time.monotonic()
    reruns: list[RunResult] = []
    if rerun_jobs:
        say(f"reruns of the differing tests ({args.reruns} in each mode):")
        reruns = run_jobs(rerun_jobs, args.jobs)
        broken += [r for r in reruns if r.exit_status not in PYTEST_FINISHED]
    rerun_seconds = time.monotonic() - t0
    for client, tests in first_diffs.items():
        stock, injected = results[(client, "stock")], results[(client, "injected")]
        for test in tests:
            s_outcomes = [stock.outcome(test)]
            i_outcomes = [injected.outcome(test)]
            reason = injected.reason(test)
            for rerun in reruns:
                if rerun.client == client and test in rerun.outcomes:
                    (s_outcomes if rerun.mode == "stock" else i_outcomes).append(
                        rerun.outcome(test)
                    )
            if not reason or i_outcomes[0] in ("passed", "xpassed"):
                reason = stock.reason(test) and f"(stock) {stock.reason(test)}"
            differences.append(Difference(client, test, s_outcomes, i_outcomes, reason))

    status = report(
        args=args, clients=clients, differences=differences, expected=expected,
        broken=broken, results=results,
    )  # fmt: skip
    total = time.monotonic() - started
    say(
        f"\ntimings: set-up {setup_seconds:.0f} s, runs {runs_seconds:.0f} s, "
        f"reruns {rerun_seconds:.0f} s, total {total:.0f} s"
    )
    say(f"logs: {cache / 'runs'}/<client>-<mode>/pytest.log")
    return status


def report(
    *,
    args: argparse.Namespace,
    clients: list[str],
    differences: list[Difference],
    expected: dict[str, str],
    broken: list[RunResult],
    results: dict[tuple[str, str], RunResult],
) -> int:
    flaky = [d for d in differences if d.flaky_stock]
    real = [d for d in differences if not d.flaky_stock]
    unexpected = [d for d in real if d.key not in expected]
    listed = [d for d in real if d.key in expected]
    compared = {c for c in clients if (c, "stock") in results and (c, "injected") in results}
    found = {d.key for d in real}
    ran = {f"{c}:{t}" for (c, _), r in results.items() if c in compared for t in r.outcomes}
    stale = sorted(
        key
        for key in expected
        if key.split(":", 1)[0] in compared and key not in found and key in ran
    )

    say()
    if not compared:
        say("nothing to compare (one mode only, and no saved run of the other)")
    for title, items in (
        ("UNEXPECTED DIFFERENCES (stock -> injected)", unexpected),
        (f"expected differences ({args.expected.name})", listed),
        ("flaky even stock (not counted)", flaky),
    ):
        if not items:
            continue
        say(f"{title}: {len(items)}")
        for client in clients:
            mine = [d for d in items if d.client == client]
            if mine:
                say(f"  {client}:")
            for d in mine:
                arrow = f"{'/'.join(d.stock)} -> {'/'.join(d.injected)}"
                note = "  [flaky injected only]" if d.flaky_injected else ""
                say(f"    {d.test}\n        {arrow}{note}: {d.reason}")
                if d.key in expected:
                    say(f"        listed: {expected[d.key]}")
    if stale:
        say(f"stale entries in {args.expected.name} (no longer differ): {len(stale)}")
        for key in stale:
            say(f"    {key}")
    for result in broken:
        what = (
            "did not finish"
            if result.exit_status is None
            else f"pytest exited {result.exit_status}"
        )
        say(f"RUN FAILED: {result.client} {result.mode}: {what}; see {result.log}")
    say(
        f"\nsummary: {len(unexpected)} unexpected, {len(listed)} expected, "
        f"{len(flaky)} flaky-stock differences; {len(stale)} stale entries"
    )
    if broken:
        return 2
    if unexpected or (stale and args.strict_stale):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
