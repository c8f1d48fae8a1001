"""`iscsi-agent-libvirt-hook` as libvirt runs it: argv DOMAIN OP SUBOP -, the domain XML on stdin.

The agent is the real socket API server with a fake service behind it; libvirt's status folder of
running domains is a temporary folder; waiting is a recorded fake.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from iscsi_agent.api.client import AgentClient
from iscsi_agent.libvirt.actions import DETACH_TRIES, Host
from iscsi_agent.libvirt.hook import main
from tests.unit.api.fakes import attachment

NS = "urn:iscsi-agent:libvirt:1"


def device(lun_id: int) -> str:
    """The device the fake agent answers for the ``lun_id``-th volume it attaches."""
    return str(attachment(lun_id=lun_id).device)


def domain_xml(name: str, volumes: list[str], disks: list[str], uuid: str = "") -> str:
    declared = "".join(f"<ia:volume>{volume}</ia:volume>" for volume in volumes)
    sources = "".join(
        f"<disk type='block' device='disk'><source dev='{dev}'/><target dev='vd{chr(97 + n)}'/></disk>"
        for n, dev in enumerate(disks)
    )
    return (
        f"<domain type='qemu'><name>{name}</name><uuid>{uuid or '4dea22b3-1d52-d8f3-2516-782e98ab3fa0'}</uuid>"
        f"<metadata><ia:volumes xmlns:ia='{NS}'>{declared}</ia:volumes></metadata>"
        f"<devices>{sources}</devices></domain>"
    )


class Sleeps:
    """Records each wait instead of sleeping; ``then`` runs after the ``after``-th."""

    def __init__(self, after: int = 0, then=lambda: None) -> None:
        self.waited: list[float] = []
        self._after, self._then = after, then

    def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)
        if len(self.waited) == self._after:
            self._then()


@pytest.fixture
def status_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run-libvirt-qemu"
    path.mkdir()
    return path


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def hook(agent, status_dir, sleeps):
    def run(op: str, subop: str, xml: str | bytes, domain: str = "vm1", sleep=None):
        err = io.StringIO()
        host = Host(AgentClient(str(agent), timeout=10), status_dir, sleep or sleeps)
        data = xml.encode() if isinstance(xml, str) else xml
        code = main([domain, op, subop, "-"], stdin=io.BytesIO(data), err=err, host=host)
        return code, err.getvalue()

    return run


def running(status_dir: Path, name: str, volumes: list[str]) -> None:
    """libvirt's status file of a running domain: its live XML inside <domstatus>."""
    xml = domain_xml(name, volumes, [], uuid=f"00000000-0000-0000-0000-{len(name):012d}")
    (status_dir / f"{name}.xml").write_text(f"<domstatus state='running' pid='4242'>{xml}</domstatus>")


def test_prepare_begin_attaches_every_declared_volume(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol1/lun1"], [device(1), device(2)])
    assert hook("prepare", "begin", xml) == (0, "")
    assert sorted(service.attached) == ["/vol/vol1/lun0", "/vol/vol1/lun1"]


def test_prepare_of_a_domain_that_declares_nothing_asks_the_agent_nothing(hook, service):
    assert hook("prepare", "begin", domain_xml("vm1", [], ["/dev/sdz"])) == (0, "")
    assert service.calls == []


def test_prepare_is_all_or_none_it_detaches_what_it_attached_and_says_why_on_one_line(hook, service):
    xml = domain_xml(
        "vm1", ["/vol/vol1/lun0", "/vol/vol1/lun1", "/vol/vol9/gone"], [device(1), device(2), "/dev/sdz"]
    )
    code, err = hook("prepare", "begin", xml)
    assert code == 1 and service.attached == {}
    assert err.count("\n") == 1 and err.startswith("iscsi-agent-libvirt-hook: vm1: volume_not_found: ")
    assert "/vol/vol1/lun1 detached again, /vol/vol1/lun0 detached again" in err
    assert [call for call in service.calls if call[0] == "detach"] == [
        ("detach", "/vol/vol1/lun1", False),
        ("detach", "/vol/vol1/lun0", False),
    ]


def test_prepare_never_detaches_a_volume_that_was_attached_before_it(hook, service):
    service.attach("/vol/vol1/lun0")  # another domain's, attached earlier
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol9/gone"], [device(1)])
    code, _ = hook("prepare", "begin", xml)
    assert code == 1 and list(service.attached) == ["/vol/vol1/lun0"]
    assert not any(call[0] == "detach" for call in service.calls)


def test_prepare_refuses_an_answer_at_a_path_no_block_disk_of_the_domain_names(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], ["/dev/disk/by-id/wwn-0x600a0980somethingelse"])
    code, err = hook("prepare", "begin", xml)
    assert code == 1 and service.attached == {}
    assert err == (
        f"iscsi-agent-libvirt-hook: vm1: volume /vol/vol1/lun0 is at {device(1)}, which no "
        "<disk type='block'> source of the domain names; /vol/vol1/lun0 detached again\n"
    )


def test_a_file_disk_at_the_right_path_does_not_count_as_the_volumes_disk(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], []).replace(
        "<devices>", f"<devices><disk type='file' device='disk'><source file='{device(1)}'/></disk>"
    )
    assert hook("prepare", "begin", xml)[0] == 1 and service.attached == {}


def test_prepare_says_so_when_the_agent_does_not_answer(status_dir, socket_dir):
    err = io.StringIO()
    host = Host(AgentClient(str(socket_dir / "absent.sock"), timeout=5), status_dir, Sleeps())
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    assert main(["vm1", "prepare", "begin", "-"], stdin=io.BytesIO(xml.encode()), err=err, host=host) == 1
    assert err.getvalue().startswith("iscsi-agent-libvirt-hook: vm1: no answer from the agent at ")
    assert err.getvalue().count("\n") == 1


def test_release_end_detaches_the_domains_volumes(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol1/lun1"], [device(1), device(2)])
    hook("prepare", "begin", xml)
    assert hook("release", "end", xml) == (0, "")
    assert service.attached == {}


def test_release_end_after_a_refused_prepare_finds_nothing_to_detach_and_succeeds(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol9/gone"], [device(1)])
    assert hook("prepare", "begin", xml)[0] == 1
    assert hook("release", "end", xml) == (0, "")


def test_release_keeps_a_volume_another_running_domain_declares(hook, service, status_dir):
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol1/lun1"], [device(1), device(2)])
    hook("prepare", "begin", xml)
    running(status_dir, "vm2", ["/vol/vol1/lun0"])
    running(status_dir, "vm1", ["/vol/vol1/lun1"])  # its own status file, if still there, does not count
    assert hook("release", "end", xml) == (0, "")
    assert list(service.attached) == ["/vol/vol1/lun0"]


def test_release_skips_a_status_file_it_cannot_read_and_one_that_went_away(hook, service, status_dir):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    hook("prepare", "begin", xml)
    (status_dir / "broken.xml").write_text("<domstatus><domain>")
    (status_dir / "gone.xml").symlink_to(status_dir / "nowhere")
    assert hook("release", "end", xml) == (0, "") and service.attached == {}


def test_release_waits_out_a_short_lived_holder(agent, status_dir, service, hook):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    hook("prepare", "begin", xml)
    service.in_use["/vol/vol1/lun0"] = ("udev-worker (pid 812)",)
    sleeps = Sleeps(after=2, then=service.in_use.clear)
    assert hook("release", "end", xml, sleep=sleeps) == (0, "")
    assert service.attached == {} and sleeps.waited == [1.0, 1.0]


def test_release_gives_up_on_a_holder_that_stays_and_names_it(agent, status_dir, service, hook, sleeps):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    hook("prepare", "begin", xml)
    service.in_use["/vol/vol1/lun0"] = ("qemu-system-x86 (pid 4242)",)
    code, err = hook("release", "end", xml)
    assert code == 1 and list(service.attached) == ["/vol/vol1/lun0"]
    assert len(sleeps.waited) == DETACH_TRIES - 1 and sum(sleeps.waited) <= 10
    assert err.startswith("iscsi-agent-libvirt-hook: vm1: could not detach /vol/vol1/lun0: volume_in_use: ")
    assert "qemu-system-x86 (pid 4242)" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "operation",
    [
        ("reconnect", "begin"),
        ("start", "begin"),
        ("started", "begin"),
        ("stopped", "end"),
        ("migrate", "begin"),
        ("restore", "begin"),
        ("attach", "begin"),
        ("prepare", "end"),
        ("no-such-op", "whatever"),
    ],
)
def test_every_other_operation_changes_nothing(hook, service, operation):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    assert hook(*operation, xml) == (0, "")
    assert service.calls == []


@pytest.mark.allow_subprocess  # a fresh interpreter: what the hook imports, not what the tests did
def test_an_operation_it_ignores_returns_before_loading_the_agents_client_or_the_xml_parser():
    # libvirt runs the hook for each of a domain's five calls and waits for each; in the VM tier the
    # ignored ones took 21-28 s each, nearly all of it these imports
    probe = (
        "import io, sys; from iscsi_agent.libvirt.hook import main; "
        "code = main(['vm1', 'started', 'begin', '-'], stdin=io.BytesIO(b'<domain/>' * 100000)); "
        "print(code, sorted(m for m in sys.modules if m.startswith(('lxml', 'http', 'iscsi_agent'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split(" ", 1) == [
        "0",
        "['iscsi_agent', 'iscsi_agent.libvirt', 'iscsi_agent.libvirt.hook']\n",
    ]


def test_reconnect_while_the_domain_runs_leaves_its_volumes_attached(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    hook("prepare", "begin", xml)
    assert hook("reconnect", "begin", xml) == (0, "")
    assert list(service.attached) == ["/vol/vol1/lun0"]


def test_a_call_without_domain_operation_and_sub_operation_is_a_usage_error(hook):
    err = io.StringIO()
    assert main(["vm1", "prepare"], stdin=io.BytesIO(b""), err=err) == 2
    assert err.getvalue().startswith("iscsi-agent-libvirt-hook: usage: ")


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    f"<domain><name>vm1</name><metadata><ia:volumes xmlns:ia='{NS}'><ia:volume>&c;</ia:volume>"
    "</ia:volumes></metadata></domain>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
    f"<domain><name>vm1</name><metadata><ia:volumes xmlns:ia='{NS}'><ia:volume>&x;</ia:volume>"
    "</ia:volumes></metadata></domain>"
)
NETWORK_DTD = (
    '<?xml version="1.0"?><!DOCTYPE domain SYSTEM "http://192.0.2.1/domain.dtd">'
    "<domain><name>vm1</name></domain>"
)


@pytest.mark.parametrize(
    ("xml", "said"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (NETWORK_DTD, "DOCTYPE"),
        ("<domain><name>vm1</name><metadata>", "does not parse"),
        ("", "does not parse"),
        ("<network><name>vm1</name></network>", "no <domain> element"),
        (
            f"<domain><metadata><ia:volumes xmlns:ia='{NS}'><ia:volume> </ia:volume></ia:volumes>"
            "</metadata></domain>",
            "empty <ia:volume>",
        ),
        (b"<domain>" + b" " * (4 * 1024 * 1024) + b"</domain>", "over"),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "network-dtd",
        "truncated",
        "empty",
        "not-a-domain",
        "empty-volume",
        "oversized",
    ],
)
@pytest.mark.parametrize("operation", [("prepare", "begin"), ("release", "end")])
def test_hostile_or_broken_xml_is_refused_in_one_line_before_any_request(hook, service, xml, said, operation):
    code, err = hook(*operation, xml)
    assert code == 1 and said in err and err.count("\n") == 1
    assert service.calls == []


def test_volumes_in_another_namespace_or_outside_the_metadata_are_not_declared(hook, service):
    xml = (
        "<domain><name>vm1</name><metadata>"
        "<x:volumes xmlns:x='urn:someone-else'><x:volume>/vol/vol1/lun0</x:volume></x:volumes>"
        f"</metadata><devices><ia:volumes xmlns:ia='{NS}'><ia:volume>/vol/vol1/lun1</ia:volume>"
        "</ia:volumes></devices></domain>"
    )
    assert hook("prepare", "begin", xml) == (0, "") and service.calls == []


def test_a_volume_declared_twice_is_attached_once(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0", "/vol/vol1/lun0"], [device(1)])
    assert hook("prepare", "begin", xml) == (0, "")
    assert [call for call in service.calls if call[0] == "attach"] == [("attach", "/vol/vol1/lun0")]


def test_the_destination_of_a_live_migration_attaches_at_prepare_and_leaves_the_xml_as_it_is(
    hook, service, capsys
):
    """libvirt's calls on the destination, in its order; whatever ``migrate begin`` prints would
    replace the domain's XML, so it prints nothing."""
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    assert hook("migrate", "begin", xml) == (0, "")
    assert capsys.readouterr().out == "" and service.attached == {}
    assert hook("prepare", "begin", xml) == (0, "")
    assert list(service.attached) == ["/vol/vol1/lun0"]
    for operation in (("start", "begin"), ("started", "begin")):
        assert hook(*operation, xml) == (0, "")
    assert list(service.attached) == ["/vol/vol1/lun0"] and capsys.readouterr().out == ""


def test_the_source_of_a_live_migration_detaches_at_release_once_qemu_has_stopped(hook, service):
    xml = domain_xml("vm1", ["/vol/vol1/lun0"], [device(1)])
    hook("prepare", "begin", xml)  # the domain started here, before the migration
    assert hook("stopped", "end", xml) == (0, "")
    assert list(service.attached) == ["/vol/vol1/lun0"]  # libvirt's release comes after
    assert hook("release", "end", xml) == (0, "")
    assert service.attached == {}
