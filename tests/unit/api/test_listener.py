"""The listening socket: its mode and group, a stale file replaced safely, or the one systemd passed."""

import grp
import os
import socket
import stat
import sys

import pytest

from iscsi_agent.api.listener import ListenerError, bind, from_systemd
from tests.second_uid import NOBODY, python_as_nobody


def test_bind_creates_a_listening_socket_with_the_mode(socket_dir):
    path = socket_dir / "agent.sock"
    listener = bind(path, 0o660, None)
    try:
        assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o660
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    finally:
        listener.close()
    assert not path.exists()


def test_bind_gives_the_socket_to_the_group_by_name_or_number(socket_dir):
    name = grp.getgrgid(os.getgid()).gr_name
    for group in (name, str(os.getgid())):
        path = socket_dir / f"{group}.sock"
        listener = bind(path, 0o600, group)
        assert path.lstat().st_gid == os.getgid() and stat.S_IMODE(path.lstat().st_mode) == 0o600
        listener.close()


def test_an_unknown_group_stops_start_up(socket_dir):
    with pytest.raises(ListenerError, match="socket_group 'no-such-group-here': no such group"):
        bind(socket_dir / "agent.sock", 0o660, "no-such-group-here")
    assert not (socket_dir / "agent.sock").exists()


def test_a_stale_socket_of_an_earlier_run_is_replaced(socket_dir):
    path = socket_dir / "agent.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    listener = bind(path, 0o660, None)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    listener.close()


def test_a_socket_someone_listens_on_is_not_taken(socket_dir):
    path = socket_dir / "agent.sock"
    running = bind(path, 0o660, None)
    try:
        with pytest.raises(ListenerError, match="another process is listening on"):
            bind(path, 0o660, None)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # still the first one's
    finally:
        running.close()


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_anything_but_a_socket_at_the_path_is_left_alone(socket_dir, kind):
    path = socket_dir / "agent.sock"
    if kind == "file":
        path.write_text("keep me")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(socket_dir / "elsewhere")
    with pytest.raises(ListenerError, match="exists and is not a socket; not replacing it"):
        bind(path, 0o660, None)
    assert path.is_symlink() if kind == "symlink" else path.exists()


def test_a_path_longer_than_sun_path_is_refused_with_its_name(socket_dir):
    path = socket_dir / ("x" * 120)
    with pytest.raises(ListenerError, match="is longer than 107 bytes"):
        bind(path, 0o660, None)


def test_closing_leaves_a_socket_that_replaced_ours(socket_dir):
    path = socket_dir / "agent.sock"
    ours = bind(path, 0o660, None)
    ours.sock.close()
    path.unlink()
    newer = bind(path, 0o660, None)
    ours.close()
    assert path.exists()
    newer.close()


def listening(socket_dir):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(socket_dir / "activated.sock"))
    sock.listen()
    return sock


def test_the_socket_systemd_passed_is_taken_and_the_variables_removed(socket_dir):
    passed = listening(socket_dir)
    environ = {
        "LISTEN_PID": str(os.getpid()),
        "LISTEN_FDS": "1",
        "LISTEN_FDNAMES": "agent.sock",
        "PATH": "/bin",
    }
    listener = from_systemd(environ, os.getpid(), first_fd=passed.fileno())
    assert listener is not None and listener.path is None
    assert listener.sock.fileno() == passed.fileno() and not os.get_inheritable(passed.fileno())
    assert environ == {"PATH": "/bin"}
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(socket_dir / "activated.sock"))
    listener.close()
    assert (socket_dir / "activated.sock").exists()  # systemd's, not ours to remove


def test_variables_meant_for_another_process_are_ignored_and_removed():
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert from_systemd(environ, os.getpid()) is None
    assert environ == {}
    assert from_systemd({}, os.getpid()) is None


def test_more_than_one_passed_socket_is_refused():
    with pytest.raises(ListenerError, match="systemd passed 2 sockets; the agent takes exactly one"):
        from_systemd({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2"}, os.getpid())


def test_a_passed_socket_that_is_not_a_listening_unix_stream_is_refused(socket_dir):
    environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with pytest.raises(ListenerError, match="not a Unix stream socket"):
        from_systemd(dict(environ), os.getpid(), first_fd=datagram.fileno())
    datagram.close()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with pytest.raises(ListenerError, match="is not listening"):
        from_systemd(dict(environ), os.getpid(), first_fd=idle.fileno())
    idle.close()


# --- the socket's folder: root's, writable by no one else, never reached through a link ---------


@pytest.mark.allow_subprocess
def test_a_socket_folder_of_another_user_is_refused_and_nothing_in_it_touched(socket_dir):
    """Its owner could swap the socket for a link between bind and chown, and steer root's chown."""
    os.chown(socket_dir, NOBODY, NOBODY)
    path = socket_dir / "agent.sock"
    python_as_nobody("import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", str(path))
    before = path.lstat()
    with pytest.raises(
        ListenerError, match=rf"socket folder {socket_dir} is owned by uid {NOBODY}, not root"
    ):
        bind(path, 0o660, None)
    after = path.lstat()
    assert (after.st_ino, after.st_uid, after.st_mode) == (before.st_ino, NOBODY, before.st_mode)


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777], ids=oct)
def test_a_socket_folder_others_may_write_is_refused(socket_dir, mode):
    socket_dir.chmod(mode)
    with pytest.raises(ListenerError, match=rf"socket folder {socket_dir} is writable by group or others"):
        bind(socket_dir / "agent.sock", 0o660, None)
    assert list(socket_dir.iterdir()) == []


def test_a_socket_folder_that_is_a_link_is_not_followed(socket_dir):
    (socket_dir / "real").mkdir(mode=0o755)
    (socket_dir / "run").symlink_to(socket_dir / "real")
    with pytest.raises(ListenerError, match=rf"socket folder {socket_dir / 'run'} is a symbolic link"):
        bind(socket_dir / "run" / "agent.sock", 0o660, None)
    assert list((socket_dir / "real").iterdir()) == []


def test_a_missing_socket_folder_is_made_writable_by_root_alone(socket_dir):
    path = socket_dir / "run" / "iscsi-agent" / "agent.sock"
    listener = bind(path, 0o660, None)
    listener.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755 and path.parent.stat().st_uid == os.geteuid()


CHMODS: list[str] = []


def _record_chmod(event: str, args: tuple[object, ...]) -> None:
    if event == "os.chmod" and CHMODS and isinstance(args[0], (str, bytes, os.PathLike)):
        CHMODS.append(os.fsdecode(args[0]))


sys.addaudithook(_record_chmod)


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666], ids=oct)
def test_the_socket_is_created_with_its_mode_not_chmodded_through_its_path(socket_dir, mode):
    """A chmod by name follows whatever is at the name by then; the mode must come with the bind."""
    umask = os.umask(0o022)
    os.umask(umask)
    CHMODS[:] = ["recording"]
    try:
        listener = bind(socket_dir / "agent.sock", mode, None)
    finally:
        recorded, CHMODS[:] = CHMODS[1:], []
    try:
        assert stat.S_IMODE((socket_dir / "agent.sock").lstat().st_mode) == mode
        assert recorded == []
    finally:
        listener.close()
    after = os.umask(umask)
    assert after == umask  # and the process's umask is as it was
