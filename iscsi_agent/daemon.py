"""The agent as a daemon: wiring, lifecycle (start → serve → stop), sd_notify and its watchdog.

Signal handlers only set the stop event; the main thread waits on it, pinging systemd's watchdog
only while the agent can work (``iscsi_agent.vitals``: its accept loops live, a program starts, the
journal takes a write), so a wedged or starved agent is restarted by systemd rather than left
running deaf. Health and the array probe live here, next to what they report on.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from iscsi_agent.api.listener import Listener, bind, from_systemd
from iscsi_agent.api.peer import PeerPolicy
from iscsi_agent.api.server import ApiServer
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.connect import connect
from iscsi_agent.array.lazy import LazyArrayClient
from iscsi_agent.array.transport import HttpTransport
from iscsi_agent.config import Config
from iscsi_agent.errors import AgentError
from iscsi_agent.host.command import SubprocessRunner
from iscsi_agent.host.initiator import read_initiator_name
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.routes import KernelRoutes
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.host.waiting import SystemClock
from iscsi_agent.journal.store import FILE_NAME, Journal
from iscsi_agent.metrics import HostCollector, MeteredRunner, Metrics
from iscsi_agent.metrics_http import MetricsServer
from iscsi_agent.reconcile.reconciler import Reconciler, Schedule
from iscsi_agent.service.build import AgentServices, build_host, build_services
from iscsi_agent.service.volumes import VolumeService
from iscsi_agent.service_api import (
    ArrayHealth,
    Attachment,
    Detachment,
    Health,
    HealthStatus,
    ReconcileAction,
    Resized,
)
from iscsi_agent.vitals import Vitals, keep_watch

log = logging.getLogger(__name__)

ARRAY_PROBE_TTL = 30.0  # health asks the array at most this often
STOP_GRACE = 30.0  # requests in flight at SIGTERM get this long to finish
JOURNAL_KEEPS = timedelta(days=30)  # finished operations are kept this long for post-mortems
STATUS_INTERVAL = 30.0  # how often STATUS= is refreshed when systemd runs no watchdog
RECOVERY_SECONDS_PER_OPERATION = 180.0  # start-up may take this much longer per interrupted operation
VITALS_TIMEOUT = 10.0  # starting iscsiadm --version takes milliseconds; a stuck start is a problem too
NOT_CHECKED = "not_checked"  # the array's health before it was first asked


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class ArrayProbe:
    """Whether the array answers, asked at most every ``ttl`` seconds (health is polled often)."""

    def __init__(
        self,
        array: LazyArrayClient,
        ttl: float = ARRAY_PROBE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._array = array
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._last = ArrayHealth(reachable=False, error=NOT_CHECKED)

    def health(self) -> ArrayHealth:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._ttl:
                self._checked_at = now
                try:
                    self._array.client().version()
                    self._last = ArrayHealth(reachable=True, api=self._array.api)
                except AgentError as exc:
                    self._last = ArrayHealth(reachable=False, api=self._array.api or None, error=exc.code)
            return self._last

    @property
    def last(self) -> ArrayHealth:
        """The last answer, without asking (the lock is held while the array is asked)."""
        return self._last


class AgentService:
    """``service_api.AttachService``: the volume service, health, and the reconciler on demand."""

    def __init__(
        self,
        *,
        volumes: VolumeService,
        reconciler: Reconciler,
        probe: ArrayProbe,
        sessions: Sessions,
        vitals: Vitals,
        background: Background,
    ) -> None:
        self._volumes = volumes
        self._vitals = vitals
        self._background = background
        self._reconciler = reconciler
        self._probe = probe
        self._sessions = sessions

    def attach(self, volume: str) -> tuple[Attachment, bool]:
        return self._volumes.attach(volume)

    def detach(self, volume: str, *, force: bool) -> Detachment:
        return self._volumes.detach(volume, force=force)

    def resize(self, volume: str) -> Resized:
        return self._volumes.resize(volume)

    def attachments(self) -> Sequence[Attachment]:
        return self._volumes.attachments()

    def attachment(self, volume: str) -> Attachment:
        return self._volumes.attachment(volume)

    def health(self, *, ask_array: bool = True) -> Health:
        """``ask_array=False``: the array as last asked, for a status that must not wait for it."""
        array = self._probe.health() if ask_array else self._probe.last
        sessions = sum(1 for session in self._sessions.current() if session.logged_in)
        problems = [*self._reconciler.degraded, *self._vitals.problems, *self._background.problems]
        last = self._reconciler.last
        return Health(
            status=HealthStatus.OK if array.reachable and not problems else HealthStatus.DEGRADED,
            array=array,
            sessions=sessions,
            attachments=len(self._volumes.attachments()),
            last_reconcile=last.finished_at if last is not None else None,
            problems=tuple(problems),
        )

    def reconcile(self, *, dry_run: bool) -> Sequence[ReconcileAction]:
        return self._reconciler.run(dry_run=dry_run)


@dataclass
class Daemon:
    config: Config
    notifier: Notifier
    environ: MutableMapping[str, str]
    stop: threading.Event

    def run(self) -> int:
        log.info("iscsi-agent starting (state in %s)", self.config.agent.state_dir)
        clock = SystemClock()
        paths = HostPaths(self.config.agent.host_root)
        initiator = read_initiator_name(paths, str(self.config.agent.initiator_name_file))
        settings = self.config.array.to_settings()
        metrics = Metrics()

        def connect_metered() -> ArrayClient:
            transport = HttpTransport.from_settings(settings)
            client = connect(settings, transport=transport)
            transport.observe = lambda result, seconds: metrics.array_request(client.api, result, seconds)
            return client

        array = LazyArrayClient(connect_metered)
        journal = Journal.open(self.config.agent.state_dir / FILE_NAME)
        pruned = journal.prune(datetime.now(UTC) - JOURNAL_KEEPS)
        if pruned:
            log.info("forgot %d operations that finished more than %s ago", pruned, JOURNAL_KEEPS)
        host = build_host(self.config, MeteredRunner(SubprocessRunner(), metrics), clock)
        services = build_services(
            self.config,
            array=_as_client(array),
            host=host,
            routes=KernelRoutes(),
            journal=journal,
            initiator=initiator,
            hostname=socket.gethostname(),
            clock=clock,
            observer=metrics,
        )
        volumes = services.volumes
        self._start_up(services)
        vitals = Vitals()  # health reports what its checks find; they need the servers, watched below
        probe = ArrayProbe(array)
        background = Background(services.reconciler, self.config.reconciler.interval, volumes, probe)
        service = AgentService(
            volumes=volumes,
            reconciler=services.reconciler,
            probe=probe,
            sessions=host.sessions,
            vitals=vitals,
            background=background,
        )
        metrics.registry.register(
            HostCollector(host.sessions, lambda: len(volumes.attachments()), host.multipath)
        )
        metrics_server = None
        if self.config.metrics.listen is not None:
            metrics_server = metrics.serve(self.config.metrics.listen)
        listener = self._listener()
        server = self._api(listener, service)
        vitals.watch(vital_checks(self.config, server, metrics_server, journal))
        where = listener.path or "the socket systemd passed"
        log.info("iscsi-agent serving on %s for %s (journal %s)", where, initiator, journal.path)
        # the array is first asked after READY (by health, the SVM's facts, an attach): a slow or
        # unreachable array must not hold the start, and its client's imports are not paid before it
        self.notifier.notify(f"READY=1\nSTATUS={_status(service, ask_array=False)}")
        background.start()
        try:
            interval = _watchdog_interval(self.environ) or STATUS_INTERVAL
            # the watchdog's ping never waits for the array: one that hangs must not get a working
            # agent killed; STATUS= says what the array answered when last asked (health asks it)
            keep_watch(
                self.stop,
                interval,
                vitals,
                self.notifier.notify,
                lambda: _status(service, ask_array=False),
            )
        finally:
            self.notifier.notify("STOPPING=1")
            background.stop()
            server.stop(STOP_GRACE)
            if metrics_server is not None:
                metrics_server.stop(STOP_GRACE)
            journal.close()
            array.close()
            log.info("iscsi-agent stopped")
        return 0

    def _start_up(self, services: AgentServices) -> None:
        """Finish what the last run left unfinished, then fit the sessions in use to this run's settings."""
        interrupted = services.recovery.interrupted()
        if interrupted:  # removals and logins may take a while: more than systemd's start timeout
            extend = int(len(interrupted) * RECOVERY_SECONDS_PER_OPERATION * 1e6)
            self.notifier.notify(
                f"EXTEND_TIMEOUT_USEC={extend}\nSTATUS=recovering {len(interrupted)} operation(s) "
                "the last run left unfinished"
            )
        services.recovery.run(interrupted)
        services.fit_session_timeouts()

    def _api(self, listener: Listener, service: AgentService) -> ApiServer:
        agent = self.config.agent
        server = ApiServer(
            listener, service, PeerPolicy(frozenset(agent.allowed_uids), frozenset(agent.allowed_gids))
        )
        server.start()
        return server

    def _listener(self) -> Listener:
        passed = from_systemd(self.environ, os.getpid())
        if passed is not None:
            return passed
        agent = self.config.agent
        return bind(agent.socket, agent.socket_mode, agent.socket_group)


class Background:
    """What starts once the agent serves, on a thread of its own: the reconciler's schedule, then the
    reads of the SVM's facts every attach needs and a first ask of the array's health. Their imports
    (apscheduler, the array client) take seconds under a slow or emulated CPU, and the main thread
    must be free to ping the watchdog from READY=1 on. What fails there is a health problem (and the
    log's traceback), never a thread that ends in silence; the agent serves on without it."""

    def __init__(
        self, reconciler: Reconciler, interval: float, volumes: VolumeService, probe: ArrayProbe
    ) -> None:
        self._reconciler = reconciler
        self._interval = interval
        self._volumes = volumes
        self._probe = probe
        self._lock = threading.Lock()
        self._schedule: Schedule | None = None
        self._stopped = False
        self._problems: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        with self._lock:
            return self._problems

    def start(self) -> None:
        threading.Thread(target=self.run, name="background start", daemon=True).start()

    def stop(self) -> None:
        """No more passes start, and one that is running is waited for (it may be removing a device)."""
        with self._lock:
            self._stopped = True
            schedule = self._schedule
        if schedule is not None:
            schedule.stop()

    def run(self) -> None:
        try:
            self._start_schedule()
        except Exception as exc:  # a bug or a broken install: said, and the reads still go on
            log.exception("background start: the reconciler's schedule did not start")
            self._failed(
                f"the reconciler's schedule did not start ({_named(exc)}); no pass runs until the agent "
                "is restarted"
            )
        try:
            _prepare(self._volumes, self._probe)
        except Exception as exc:  # a bug: said; the first attach reads them again
            log.exception("background start: reading the SVM's target and LIFs failed")
            self._failed(f"reading the SVM's target and LIFs failed ({_named(exc)})")

    def _start_schedule(self) -> None:
        schedule = Schedule(self._reconciler.run_scheduled, self._interval)
        with self._lock:
            if self._stopped:
                return
            schedule.start()
            self._schedule = schedule

    def _failed(self, problem: str) -> None:
        with self._lock:
            self._problems += (problem,)


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _prepare(volumes: VolumeService, probe: ArrayProbe) -> None:
    """Read the SVM's target and LIFs once the agent serves, off every attach's path (an array that
    does not answer now is asked again by the first attach that needs them), then ask the array's
    health once, so that STATUS= says how it answered before any client asks."""
    try:
        volumes.prepare()
    except AgentError as exc:
        log.info("the SVM's target and LIFs are read by the first attach instead: %s", exc)
    finally:
        probe.health()


def vital_checks(
    config: Config, server: ApiServer, metrics: MetricsServer | None, journal: Journal
) -> dict[str, Callable[[], None]]:
    """What the agent needs to do its job: its servers accepting, iscsiadm starting, the journal writable."""

    def accepting(name: str, alive: Callable[[], bool]) -> Callable[[], None]:
        def check() -> None:
            if not alive():
                raise RuntimeError(f"the {name}'s accept loop died")

        return check

    def start_program() -> None:
        SubprocessRunner()([config.iscsi.iscsiadm, "--version"], timeout=VITALS_TIMEOUT).check()

    checks = {"api": accepting("API", server.alive)}
    if metrics is not None:
        checks["metrics"] = accepting("metrics server", metrics.alive)
    checks["start a program"] = start_program
    checks["write the journal"] = journal.check_writable
    return checks


def _status(service: AgentService, *, ask_array: bool = True) -> str:
    health = service.health(ask_array=ask_array)
    array = "reachable" if health.array.reachable else "unreachable"
    if health.array.error == NOT_CHECKED:
        array = "not asked yet"
    return f"serving: {health.attachments} attachments, {health.sessions} sessions, array {array}"


def _watchdog_interval(environ: MutableMapping[str, str]) -> float | None:
    """Half of systemd's WatchdogSec (WATCHDOG_USEC), when it is meant for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def _as_client(array: LazyArrayClient) -> ArrayClient:
    """The lazy client forwards every ArrayClient method (``__getattr__``), which mypy cannot see."""
    return array  # type: ignore[return-value]


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
