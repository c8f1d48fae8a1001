"""The attach service behind the socket API: names volumes, serialises per volume, bounds the work.

No host-wide lock: attaches and detaches of different volumes run in parallel, up to ``workers``
at once; an attach and a detach of one volume (in any of its names) run one after the other. A
volume this agent already attached is answered from the journal without asking the array when it
is named by path or UUID; a bare name is resolved as the array resolves it (from the client's cache
once the array has called it unique), so a name several LUNs share is ambiguous whether or not one
of them is attached. The journal's device is handed out again only after a fresh read shows it is
still the LUN (``service.handed_out``); otherwise the attach runs again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from iscsi_agent.array.client import ArrayClient, find_lun, is_lun_name
from iscsi_agent.array.errors import ArrayNotFound
from iscsi_agent.array.model import Lun
from iscsi_agent.host.errors import DeviceInUse
from iscsi_agent.journal import model as record
from iscsi_agent.journal.store import Journal
from iscsi_agent.naa import multipath_wwid
from iscsi_agent.service.array_view import ArrayView
from iscsi_agent.service.attach import Attacher
from iscsi_agent.service.detach import Detacher
from iscsi_agent.service.handed_out import HandedOutDevices
from iscsi_agent.service.locks import KeyedLocks, OperationGate
from iscsi_agent.service.resize import Resizer
from iscsi_agent.service_api import (
    Attachment,
    Detachment,
    NotAttached,
    Resized,
    VolumeAmbiguous,
    VolumeInUse,
    VolumeNotFound,
    VolumeState,
)

log = logging.getLogger(__name__)

_LISTED = {
    record.AttachmentState.ATTACHED: VolumeState.ATTACHED,
    record.AttachmentState.DETACHING: VolumeState.DETACHING,
}
"""The journal's states an attachment is answered in (an attach writes its record only once done)."""


class VolumeService:
    """The volume half of ``iscsi_agent.service_api.AttachService``; the daemon adds health and reconcile."""

    def __init__(
        self,
        *,
        array: ArrayClient,
        attacher: Attacher,
        detacher: Detacher,
        journal: Journal,
        view: ArrayView,
        handed_out: HandedOutDevices,
        resizer: Resizer,
        gate: OperationGate,
        workers: int,
        chap_username: str | None = None,
    ) -> None:
        self._array = array
        self._attacher = attacher
        self._detacher = detacher
        self._journal = journal
        self._view = view
        self._handed_out = handed_out
        self._resizer = resizer
        self._gate = gate
        self._slots = threading.BoundedSemaphore(workers)
        self._locks = KeyedLocks()
        self._chap_username = chap_username

    def attach(self, volume: str) -> tuple[Attachment, bool]:
        with self._slots, self._gate.operation():
            known, lun = self._known(volume)
            if known is not None:
                with self._locks.hold(known.lun_uuid):
                    again = self._answer_again(known.lun_uuid)
                    if again is not None:
                        return again, False
                    lun = lun or self._lookup(volume)
                    if lun.uuid == known.lun_uuid:
                        return self.answer(self._attacher.attach(volume, lun)), True
            lun = lun or self._lookup(volume)
            with self._locks.hold(lun.uuid):
                again = self._answer_again(lun.uuid)
                if again is not None:
                    return again, False  # attached meanwhile by another name
                return self.answer(self._attacher.attach(volume, lun)), True

    def prepare(self) -> None:
        """Read what every attach needs and no attach changes (the SVM's target and LIFs), so that the
        first attach waits only for its own requests; the daemon calls it once it serves."""
        self._view.prepare()

    def detach(self, volume: str, *, force: bool) -> Detachment:
        with self._slots, self._gate.operation():
            known, lun = self._known_attached(volume)
            if known is None:
                if not force:
                    raise NotAttached(volume)
                known = self._unrecorded(volume, lun)
                if known is None:
                    return Detachment(volume)
            with self._locks.hold(known.lun_uuid):
                current = self._journal.attachment(known.lun_uuid)
                target = current.attachment if current is not None else known
                try:
                    self._detacher.detach(volume, target, force=force)
                except DeviceInUse as exc:
                    facts = exc.details
                    raise VolumeInUse(
                        volume,
                        [str(facts.get("holder", exc.message))],
                        device=facts.get("device"),
                        removed=facts.get("removed", ()),
                        left=facts.get("left", ()),
                    ) from exc
            return Detachment(target.lun_path)

    def resize(self, volume: str) -> Resized:
        """Under the volume's lock, as attach and detach: a detach cannot remove a path mid-rescan."""
        with self._slots, self._gate.operation():
            known, _ = self._known_attached(volume)
            if known is None:
                raise NotAttached(volume)
            with self._locks.hold(known.lun_uuid):
                current = self._journal.attachment(known.lun_uuid)
                if current is None or current.attachment.state is not record.AttachmentState.ATTACHED:
                    raise NotAttached(volume)
                attached = current.attachment
                size = self._resizer.resize(attached)
                return Resized(attached.lun_path, Path(attached.device or ""), size)

    def attachments(self) -> Sequence[Attachment]:
        """Attached volumes, and those a detach left partway: what is left of them is still on the
        host, and the client's retry of the detach needs to find them. As recorded: ``attachment``
        and ``attach`` verify the device."""
        return [
            self.answer(found.attachment)
            for found in self._journal.attachments()
            if found.attachment.state in _LISTED
        ]

    def attachment(self, volume: str) -> Attachment:
        known, _ = self._known_attached(volume)
        if known is None:
            raise NotAttached(volume)
        with self._locks.hold(known.lun_uuid):
            current = self._journal.attachment(known.lun_uuid)
            if current is None or current.attachment.state not in _LISTED:
                raise NotAttached(volume)
            if current.attachment.state is not record.AttachmentState.ATTACHED:
                return self.answer(current.attachment)  # a detach left it partway: nothing to hand out
            finding = self._handed_out.check(current.attachment)
            if not finding.verified:
                raise finding.refusal()
            return self.answer(current.attachment)

    def answer(self, attached: record.Attachment) -> Attachment:
        """The API's view of a journal record (no secret: the CHAP user at most)."""
        return Attachment(
            volume=attached.lun_path,
            lun_uuid=attached.lun_uuid,
            device=Path(attached.device or ""),
            wwid=attached.wwid,
            lun_id=attached.lun_id,
            target_iqn=attached.target_iqn,
            portals=attached.portals,
            multipath=attached.multipath,
            auth_username=self._chap_username,
            state=_LISTED[attached.state],
        )

    def _known(self, volume: str) -> tuple[record.Attachment | None, Lun | None]:
        """The journal's attachment that ``volume`` names, and its LUN where the array was asked.

        A path or a UUID is an identity, which the journal answers alone. A bare name is resolved by
        the array client (VolumeAmbiguous, VolumeNotFound), then looked up in the journal by UUID.
        """
        if not is_lun_name(volume):
            return self._recorded(volume), None
        lun = self._lookup(volume)
        found = self._journal.attachment(lun.uuid)
        return (found.attachment if found is not None else None), lun

    def _known_attached(self, volume: str) -> tuple[record.Attachment | None, Lun | None]:
        """``_known`` for a detach or a question: a name the array no longer has (its LUN deleted
        while attached here) still names the one attachment of that name, and is ambiguous when
        several share it."""
        try:
            return self._known(volume)
        except VolumeNotFound:
            matches = [
                found.attachment
                for found in self._journal.attachments()
                if volume == found.attachment.lun_path.rsplit("/", 1)[-1]
            ]
            if len(matches) > 1:
                raise VolumeAmbiguous(volume, sorted(m.lun_path for m in matches)) from None
            return (matches[0] if matches else None), None

    def _recorded(self, volume: str) -> record.Attachment | None:
        """The journal's attachment that a path or LUN UUID names (or the volume as it was given)."""
        matches = [
            found.attachment
            for found in self._journal.attachments()
            if volume in (found.attachment.lun_uuid, found.attachment.lun_path, found.attachment.volume)
        ]
        return matches[0] if len(matches) == 1 else None

    def _answer_again(self, lun_uuid: str) -> Attachment | None:
        """The journal's answer for an attached LUN whose device a fresh read shows is still that LUN;
        None when the attach must run again (no record, device gone or now another LUN's). An identity
        that cannot be read is no reason to attach again, nor to hand the device out: IdentityUnreadable.
        """
        current = self._journal.attachment(lun_uuid)
        if current is None:
            return None
        attached = current.attachment
        if attached.state is not record.AttachmentState.ATTACHED or not attached.device:
            return None
        finding = self._handed_out.check(attached)
        if finding.verified:
            return self.answer(attached)
        if finding.unreadable:
            raise finding.refusal()
        log.warning("%s; attaching %s again", finding.refusal(), attached.lun_path)
        return None

    def _lookup(self, volume: str) -> Lun:
        try:
            return find_lun(self._array, volume)
        except ArrayNotFound as exc:
            if exc.details.get("kind", "lun") != "lun":
                raise
            candidates = exc.details.get("candidates") or []
            if len(candidates) > 1:
                raise VolumeAmbiguous(volume, candidates) from exc
            raise VolumeNotFound(volume) from exc

    def _unrecorded(self, volume: str, lun: Lun | None) -> record.Attachment | None:
        """For a forced detach of a volume this agent has no record of: its devices, by the LUN's WWID.

        The map is left alone (the agent did not make it); only host-side paths and idle sessions go.
        """
        if lun is None:
            try:
                lun = self._lookup(volume)
            except VolumeNotFound:
                return None
        return record.Attachment(
            lun_uuid=lun.uuid,
            lun_path=lun.path,
            volume=volume,
            svm=lun.svm,
            serial=lun.serial,
            wwid=multipath_wwid(lun.serial),
            lun_id=-1,  # unknown: the devices are found by WWID
            igroup="",
            map_created=False,
            target_iqn=self._view.target_iqn(),
            portals=(),
            multipath=False,
            state=record.AttachmentState.DETACHING,
        )
