"""Assembles the attach service from the configuration and the side-effect boundaries.

The daemon and the tests call this one function, so what runs in production is what is tested;
the boundaries (array client, runner, clock, routes, journal) come in from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsi_agent.array.client import ArrayClient
from iscsi_agent.config import ChapSecrets, Config
from iscsi_agent.host.blockdev import BlockOps, KernelBlockOps
from iscsi_agent.host.command import CommandRunner
from iscsi_agent.host.devices import Devices, Watch
from iscsi_agent.host.iscsi_db import IscsiDatabase
from iscsi_agent.host.iscsiadm import Iscsiadm, NodeSettings
from iscsi_agent.host.multipath import Multipath
from iscsi_agent.host.paths import HostPaths
from iscsi_agent.host.removal import DeviceRemover
from iscsi_agent.host.routes import RouteTable
from iscsi_agent.host.sessions import Sessions
from iscsi_agent.host.waiting import Clock
from iscsi_agent.host.watch import watching
from iscsi_agent.journal.store import Journal
from iscsi_agent.reconcile.act import Executor
from iscsi_agent.reconcile.observe import StateReader
from iscsi_agent.reconcile.plan import Policy
from iscsi_agent.reconcile.reconciler import Reconciler
from iscsi_agent.service.array_view import ArrayView
from iscsi_agent.service.attach import Attacher, AttachSettings
from iscsi_agent.service.chap import ChapRotation, ChapUsers
from iscsi_agent.service.detach import Detacher
from iscsi_agent.service.handed_out import HandedOutDevices
from iscsi_agent.service.ifaces import IfaceBinding
from iscsi_agent.service.igroup import igroup_name
from iscsi_agent.service.locks import OperationGate
from iscsi_agent.service.logins import Logins
from iscsi_agent.service.lun_device import LunDevices, LunDeviceTimeouts
from iscsi_agent.service.observe import Observer, Unobserved
from iscsi_agent.service.recovery import Recovery
from iscsi_agent.service.resize import Resizer
from iscsi_agent.service.steps import LeftOpen, Operations
from iscsi_agent.service.volumes import VolumeService


@dataclass(frozen=True)
class HostLayer:
    paths: HostPaths
    iscsiadm: Iscsiadm
    sessions: Sessions
    devices: Devices
    remover: DeviceRemover
    multipath: Multipath | None


def build_host(
    config: Config,
    runner: CommandRunner,
    clock: Clock,
    *,
    watch: Watch = watching,
    block: BlockOps | None = None,
) -> HostLayer:
    paths = HostPaths(config.agent.host_root)
    devices = Devices(paths, clock, watch)
    return HostLayer(
        paths=paths,
        iscsiadm=Iscsiadm(
            runner,
            IscsiDatabase(paths, clock),
            program=config.iscsi.iscsiadm,
            login_timeout=config.iscsi.login_timeout + 5,
        ),
        sessions=Sessions(paths),
        devices=devices,
        remover=DeviceRemover(paths, devices, block or KernelBlockOps(), clock),
        multipath=Multipath(paths, runner, clock) if config.iscsi.multipath else None,
    )


def node_settings(config: Config, chap: ChapUsers | None) -> NodeSettings:
    """The node records' settings, with the CHAP secrets read at start (``ChapRotation`` replaces them)."""
    iscsi = config.iscsi
    secrets = ChapSecrets(iscsi.chap_secret, iscsi.chap_target_secret)
    return NodeSettings(
        login_timeout=int(iscsi.login_timeout),
        replacement_timeout=iscsi.replacement_timeout,
        chap=chap.for_host(secrets) if chap is not None else None,
    )


@dataclass(frozen=True)
class AgentServices:
    """The attach service, the start-up recovery and the reconciler, over shared state (the array
    view, the sessions in use, the gate between operations and reconciler passes)."""

    volumes: VolumeService
    recovery: Recovery
    reconciler: Reconciler
    logins: Logins

    def fit_session_timeouts(self) -> None:
        """At start: the sessions the attachments use get this run's replacement timeout (the mode
        may have changed since they logged in)."""
        attachments = self.volumes.attachments()
        self.logins.fit_timeouts((a.target_iqn, portal) for a in attachments for portal in a.portals)


def build_services(
    config: Config,
    *,
    array: ArrayClient,
    host: HostLayer,
    routes: RouteTable,
    journal: Journal,
    initiator: str,
    hostname: str,
    clock: Clock,
    observer: Observer | None = None,
) -> AgentServices:
    observer = observer or Unobserved()
    gate = OperationGate()
    left_open = LeftOpen()
    view = ArrayView(
        array,
        initiator=initiator,
        igroup_name=igroup_name(config.array.igroup_prefix, hostname, initiator),
        os_type=config.array.os_type,
    )
    users = (
        ChapUsers(initiator, config.iscsi.chap_username, config.iscsi.chap_target_username)
        if config.iscsi.chap_username
        else None
    )
    logins = Logins(
        host.iscsiadm,
        host.sessions,
        node_settings(config, users),
        clock,
        IfaceBinding(config.iscsi.ifaces, routes),
    )
    chap = (
        ChapRotation(users, config.iscsi.read_chap_secrets, array=array, view=view, logins=logins)
        if users is not None
        else None
    )
    timeouts = LunDeviceTimeouts(device=config.iscsi.device_timeout, removal=config.iscsi.device_timeout)
    attacher = Attacher(
        array=array,
        view=view,
        logins=logins,
        lun_devices=LunDevices(
            host.sessions,
            host.devices,
            host.remover,
            clock,
            timeouts=timeouts,
            observer=observer,
            multipath=host.multipath,
        ),
        routes=routes,
        multipath=host.multipath,
        journal=journal,
        paths=host.paths,
        svm=config.array.vserver,
        settings=AttachSettings(
            multipath=config.iscsi.multipath,
            portal_networks=config.iscsi.portal_networks,
            multipath_timeout=2 * config.iscsi.device_timeout,
            ifaces=config.iscsi.ifaces,
        ),
        clock=clock,
        observer=observer,
        left_open=left_open,
        chap=chap,
    )
    detacher = Detacher(
        array=array,
        sessions=host.sessions,
        devices=host.devices,
        remover=host.remover,
        multipath=host.multipath,
        logins=logins,
        journal=journal,
        paths=host.paths,
        clock=clock,
        observer=observer,
        left_open=left_open,
        removal_timeout=config.iscsi.device_timeout,
    )
    handed_out = HandedOutDevices(
        host.paths, host.devices, host.multipath, timeout=config.iscsi.device_timeout
    )
    volumes = VolumeService(
        array=array,
        attacher=attacher,
        detacher=detacher,
        journal=journal,
        view=view,
        handed_out=handed_out,
        resizer=Resizer(
            array=array,
            sessions=host.sessions,
            devices=host.devices,
            multipath=host.multipath,
            handed_out=handed_out,
            paths=host.paths,
            clock=clock,
            timeout=config.iscsi.device_timeout,
            observer=observer,
        ),
        gate=gate,
        workers=config.agent.workers,
        chap_username=config.iscsi.chap_username or None,
    )
    recovery = Recovery(
        journal,
        detacher,
        own_igroup=view.own_igroup_name,
        left_open=left_open,
        clock=clock,
        observer=observer,
    )
    reconciler = Reconciler(
        reader=StateReader(
            array=array,
            view=view,
            initiator=initiator,
            sessions=host.sessions,
            devices=host.devices,
            multipath=host.multipath,
            paths=host.paths,
            journal=journal,
            clock=clock,
        ),
        executor=Executor(
            array=array,
            view=view,
            initiator=initiator,
            sessions=host.sessions,
            devices=host.devices,
            remover=host.remover,
            multipath=host.multipath,
            logins=logins,
            paths=host.paths,
            recovery=recovery,
            removal_timeout=config.iscsi.device_timeout,
        ),
        operations=Operations(journal, clock, observer, left_open),
        recovery=recovery,
        gate=gate,
        policy=reconcile_policy(config),
        clock=clock,
        observer=observer,
        busy_timeout=config.reconciler.interval,
        chap=chap,
    )
    return AgentServices(volumes, recovery, reconciler, logins)


def reconcile_policy(config: Config) -> Policy:
    """A down session gets a whole interval (at least one more pass) to come back on its own first:
    iscsid reconnects by itself, and a login on top of its retries only adds load."""
    settings = config.reconciler
    return Policy(
        remove_stale_devices=settings.remove_stale_devices,
        logout_idle_sessions=settings.logout_idle_sessions,
        session_grace=settings.interval,
    )
