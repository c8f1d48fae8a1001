"""A seeded fuzzer for the socket API: generated requests of every kind against the real server.

The server is ``ApiServer`` on a Unix socket in a temporary folder, with ``FakeService`` behind it
and short timeouts. Each case is one client: raw bytes, a mangled request line, hostile headers,
bodies and JSON, volume names with encodings and control characters, a client trickling its
request, an idle one, one hanging up early, or a flood of connections. Every answer must be
well-formed HTTP with a JSON body whose length is its Content-Length; a 500, an exception logged by
the server, an answer that never comes (a hang), or descriptors and threads left behind once the
server settles are failures. The same seed gives the same cases.

``python -m tests.unit.api.fuzz --cases 10000 --seed 1`` (``make fuzz``) prints the figures;
``test_fuzz.py`` runs a short seed set in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import resource
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from iscsi_agent.api.listener import bind
from iscsi_agent.api.peer import PeerPolicy
from iscsi_agent.api.server import ApiServer, Limits
from tests.unit.api.fakes import FakeService

LIMITS = Limits(head_timeout=0.3, body_timeout=0.3, write_timeout=1.0, refusal_timeout=0.2, linger=0.1)
ANSWER_WITHIN = 5.0  # far beyond every server deadline above: no answer by then is a hang
WORKERS = 8
CONNECT_TRIES = 100  # a full backlog drains within a second, as the server takes or closes connections
SETTLE = 10.0  # how long the server gets to give back threads and descriptors at the end

METHODS = [
    "GET",
    "POST",
    "DELETE",
    "PUT",
    "HEAD",
    "OPTIONS",
    "PATCH",
    "TRACE",
    "CONNECT",
    "get",
    "G\x00T",
    "",
]
TARGETS = [
    "/v1/health",
    "/v1/attachments",
    "/v1/attachments/{volume}",
    "/v1/attachments/{volume}?force={force}",
    "/v1/reconcile",
    "/v1/reconcile?dry_run={force}",
    "/",
    "*",
    "http://localhost/v1/health",
    "/v1/../v1/health",
    "//v1/health",
    "/v1/health?{junk}",
]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1x", "", "http/1.1", "HTTP/1.10"]
VOLUMES = ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol1/lun9", "vol1/lun0", "/vol/../etc/passwd"]
ODD = [
    "\x00",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x7f",
    "\x1b[31m",
    "é",
    "\u202e",
    "\U0001f4a5",
    "%",
    "%00",
    "%zz",
    "%c0%af",
    "..",
    "/",
    "?",
    "#",
    " ",
    '"',
    "\\",
]


@dataclass
class Case:
    kind: str
    data: bytes = b""
    pieces: int = 1  # sent in this many pieces, with ``pause`` between them
    pause: float = 0.0
    hang_up: bool = False  # close without reading
    flood: int = 0


@dataclass
class Report:
    cases: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    leaked_fds: int = 0
    leaked_threads: int = 0

    def failures(self) -> list[str]:
        leaks = (
            [f"{self.leaked_fds} descriptors and {self.leaked_threads} threads left"]
            if (self.leaked_fds or self.leaked_threads)
            else []
        )
        return [*self.crashes, *self.hangs, *self.malformed, *leaks]

    def text(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.cases} cases in {self.seconds:.1f}s ({rate:.0f} cases/s)",
            "by answer: " + ", ".join(f"{status} {count}" for status, count in sorted(self.statuses.items())),
            "by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(self.kinds.items())),
            f"crashes (500s, exceptions): {len(self.crashes)}",
            f"hangs: {len(self.hangs)}",
            f"malformed answers: {len(self.malformed)}",
            f"leaks: {self.leaked_fds} descriptors, {self.leaked_threads} threads",
        ]
        lines += [f"  {failure}" for failure in self.failures()[:20]]
        return "\n".join(lines)


# -- generating ------------------------------------------------------------------------------------


def _odd_text(rng: random.Random, size: int = 12) -> str:
    return "".join(rng.choice([*ODD, "a", "b", "0", "-"]) for _ in range(rng.randint(0, size)))


def _volume(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.4:
        return quote(rng.choice(VOLUMES), safe="")
    if choice < 0.7:
        return quote(rng.choice(VOLUMES) + _odd_text(rng), safe=rng.choice(["", "/", "%"]))
    if choice < 0.85:
        return _odd_text(rng, 30)  # not encoded at all
    return quote("/vol/" + "v" * rng.choice([1, 255, 4096, 20000]), safe="")


def _target(rng: random.Random) -> str:
    return rng.choice(TARGETS).format(
        volume=_volume(rng),
        force=rng.choice(["true", "false", "1", "", "yes", _odd_text(rng, 4)]),
        junk=_odd_text(rng),
    )


def _json_body(rng: random.Random) -> bytes:
    shapes: list[Callable[[], object]] = [
        lambda: {"volume": rng.choice(VOLUMES)},
        lambda: {"volume": rng.choice(VOLUMES) + _odd_text(rng)},
        lambda: {"volume": rng.choice([None, 1, 1.5, True, [], {}, "", "x" * 70000])},
        lambda: {"volume": rng.choice(VOLUMES), "extra": _odd_text(rng)},
        lambda: {},
        lambda: [rng.choice(VOLUMES)],
        lambda: rng.choice([None, 0, "volume", True]),
        lambda: {"volume": rng.choice(VOLUMES), "volume ": "x"},
    ]
    choice = rng.random()
    if choice < 0.7:
        return json.dumps(rng.choice(shapes)(), ensure_ascii=rng.random() < 0.5).encode(
            "utf-8", "surrogatepass"
        )
    if choice < 0.8:
        depth = rng.choice([10, 1000, 100000])
        return b"[" * depth + b"]" * depth
    if choice < 0.9:
        return rng.randbytes(rng.randint(1, 200))
    return b'{"volume": "/vol/vol1/lun0"' + rng.choice([b"", b",", b"}}", b"\x00}"])


def _headers(rng: random.Random, body: bytes) -> list[str]:
    headers = ["Host: localhost"] if rng.random() < 0.8 else []
    length = len(body)
    choice = rng.random()
    if choice < 0.7:
        headers.append(f"Content-Length: {length}")
    elif choice < 0.75:
        headers.append(f"Content-Length: {rng.choice([-1, length + 10, 2**64, 10**9])}")
    elif choice < 0.8:
        headers += [f"Content-Length: {length}", f"Content-Length: {length + 1}"]
    elif choice < 0.85:
        headers.append(f"Content-Length: {rng.choice(['abc', ' 1', '1e3', '0x10', ''])}")
    elif choice < 0.9:
        headers.append("Transfer-Encoding: chunked")
    if rng.random() < 0.1:
        headers.append("Expect: 100-continue")
    for _ in range(rng.choice([0, 0, 1, 3, 120])):
        name = rng.choice(["X-A", "Accept", "Connection", "Content-Type", _odd_text(rng, 6) or "X"])
        headers.append(f"{name}: {_odd_text(rng, 20)}")
    if rng.random() < 0.03:
        headers.append("X-Big: " + "x" * rng.choice([9000, 20000]))
    if rng.random() < 0.05:
        headers.append(" folded continuation")
    return headers


def _request(rng: random.Random) -> bytes:
    method = rng.choice(METHODS) if rng.random() < 0.3 else rng.choice(["GET", "POST", "DELETE"])
    body = _json_body(rng) if method == "POST" or rng.random() < 0.1 else b""
    line = f"{method} {_target(rng)} {rng.choice(VERSIONS) if rng.random() < 0.2 else 'HTTP/1.1'}"
    ending = rng.choice(["\r\n", "\r\n", "\r\n", "\n"])
    head = ending.join([line, *_headers(rng, body)]) + ending + ending
    return head.encode("utf-8", "surrogateescape") + body


def _valid(rng: random.Random) -> bytes:
    volume = rng.choice(VOLUMES[:3])
    method, target, body = rng.choice(
        [
            ("GET", "/v1/health", b""),
            ("GET", "/v1/attachments", b""),
            ("GET", f"/v1/attachments/{quote(volume, safe='')}", b""),
            ("POST", "/v1/attachments", json.dumps({"volume": volume}).encode()),
            (
                "DELETE",
                f"/v1/attachments/{quote(volume, safe='')}?force={rng.choice(['true', 'false'])}",
                b"",
            ),
            ("POST", f"/v1/reconcile?dry_run={rng.choice(['true', 'false'])}", b""),
        ]
    )
    length = f"Content-Length: {len(body)}\r\n" if method == "POST" else ""
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n{length}\r\n".encode() + body


def generate(rng: random.Random) -> Case:
    roll = rng.random()
    if roll < 0.2:
        return Case("valid", _valid(rng))
    if roll < 0.3:
        data = rng.randbytes(rng.randint(0, 3000))
        return Case("raw bytes", data + (b"\r\n\r\n" if rng.random() < 0.7 else b""))
    if roll < 0.85:
        return Case("request", _request(rng))
    if roll < 0.9:
        data = _request(rng)
        return Case("hang-up", data[: rng.randint(0, len(data))], hang_up=True)
    if roll < 0.95:
        return Case("slow", _request(rng), pieces=rng.randint(2, 6), pause=rng.uniform(0.0, 0.04))
    if roll < 0.98:
        data = _request(rng)
        return Case("idle", data[: rng.randint(0, max(0, len(data) - 1))])
    return Case("flood", flood=rng.randint(20, 120))


# -- running ---------------------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Exceptions the server logged: a bug somewhere, whatever the client saw."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record.getMessage()[:200])


def _open_fds() -> int:
    """Descriptors open in this process, counted without /proc (the host guard keeps tests off it)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    count = 0
    for fd in range(min(limit, 65536)):
        with contextlib.suppress(OSError):
            os.fstat(fd)
            count += 1
    return count


def _answer(path: Path, case: Case) -> str:
    """The answer's status, "closed" (no answer), or raises on a hang or a malformed answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(ANSWER_WITHIN)
        for _ in range(CONNECT_TRIES):
            try:
                client.connect(str(path))
                break
            except (
                BlockingIOError
            ):  # the backlog is full (a flood): the kernel refuses, the server does not grow
                time.sleep(0.01)
        else:
            return "refused"
        size = -(-len(case.data) // case.pieces) if case.data else 0
        try:
            for start in range(0, len(case.data), max(size, 1)):
                client.sendall(case.data[start : start + size])
                if case.pause:
                    time.sleep(case.pause)
            if case.hang_up:
                return "closed"
            raw = b""
            while chunk := client.recv(65536):
                raw += chunk
        except TimeoutError:
            raise
        except OSError:
            return "closed"  # the server answered early and closed while this client still sent
    if not raw:
        return "closed"
    return str(_check(raw))


class Malformed(Exception):
    pass


def _check(raw: bytes) -> int:
    raw = raw.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    if int(headers.get("Content-Length", -1)) != len(body):
        raise Malformed(f"Content-Length {headers.get('Content-Length')} for {len(body)} bytes")
    payload = json.loads(body)
    status = int(status_line.split()[1])
    if status >= 400 and not payload.get("error", {}).get("code"):
        raise Malformed(f"{status} without an error code")
    return status


def _flood(path: Path, count: int) -> str:
    clients = []
    try:
        for _ in range(count):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            clients.append(client)
            client.setblocking(False)
            if client.connect_ex(str(path)):
                break  # the backlog is full: the kernel refuses, the server does not grow
    finally:
        for client in clients:
            client.close()
    return "flood"


def _run_case(path: Path, case: Case, report: Report, lock: threading.Lock) -> None:
    try:
        outcome = _flood(path, case.flood) if case.flood else _answer(path, case)
    except TimeoutError:
        with lock:
            report.hangs.append(f"{case.kind}: no answer in {ANSWER_WITHIN}s to {case.data[:80]!r}")
        return
    except (Malformed, ValueError, KeyError, IndexError) as exc:
        with lock:
            report.malformed.append(f"{case.kind}: {exc!r} to {case.data[:80]!r}")
        return
    with lock:
        report.statuses[outcome] += 1
        if outcome == "500":
            report.crashes.append(f"{case.kind}: 500 to {case.data[:80]!r}")


@contextlib.contextmanager
def _server() -> Iterator[tuple[Path, ApiServer]]:
    folder = Path(tempfile.mkdtemp(prefix="ia-fuzz-"))
    try:
        path = folder / "api.sock"
        server = ApiServer(
            bind(path, 0o600, None), FakeService(), PeerPolicy(frozenset({os.getuid()}), frozenset()), LIMITS
        )
        server.start()
        try:
            yield path, server
        finally:
            server.stop(grace=SETTLE)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fuzz(seed: int, cases: int) -> Report:
    rng = random.Random(seed)
    generated = [generate(rng) for _ in range(cases)]
    report = Report(cases=cases)
    errors = _Errors()
    logger = logging.getLogger("iscsi_agent")
    logger.addHandler(errors)
    threads, fds = threading.active_count(), _open_fds()
    started = time.monotonic()
    lock = threading.Lock()
    try:
        with _server() as (path, server):
            with ThreadPoolExecutor(WORKERS) as pool:
                for case in generated:
                    report.kinds[case.kind] += 1
                for future in [pool.submit(_run_case, path, case, report, lock) for case in generated]:
                    future.result()
            report.seconds = time.monotonic() - started
            if not server.alive():
                report.crashes.append("the accept loop died")
            health = _answer(path, Case("request", b"GET /v1/health HTTP/1.1\r\n\r\n"))
            if health != "200":
                report.crashes.append(f"health answered {health} after the run")
    finally:
        logger.removeHandler(errors)
    report.crashes += [f"logged: {record}" for record in errors.records]
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline and (threading.active_count() > threads or _open_fds() > fds):
        time.sleep(0.05)
    report.leaked_threads = max(0, threading.active_count() - threads)
    report.leaked_fds = max(0, _open_fds() - fds)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the server's refusal warnings would drown the figures
    report = fuzz(args.seed, args.cases)
    print(f"seed {args.seed}: " + report.text())
    return 1 if report.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
