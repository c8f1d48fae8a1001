"""Every host path is joined under the configured root, and read back as the host names it."""

from pathlib import Path

from iscsi_agent.host.paths import HostPaths


def test_paths_are_joined_under_the_root(tmp_path):
    paths = HostPaths(tmp_path)
    assert paths.scsi_host(6) == tmp_path / "sys/class/scsi_host/host6"
    assert paths.dev("sda") == tmp_path / "dev/sda"
    assert paths.under_root("/etc/iscsi/initiatorname.iscsi") == tmp_path / "etc/iscsi/initiatorname.iscsi"
    assert paths.mountinfo() == tmp_path / "proc/self/mountinfo"


def test_the_default_root_is_the_real_one():
    assert HostPaths().by_path() == Path("/dev/disk/by-path")
    assert HostPaths().host_view(Path("/dev/sda")) == "/dev/sda"


def test_host_view_strips_the_root(tmp_path):
    assert HostPaths(tmp_path).host_view(tmp_path / "dev/disk/by-path/x") == "/dev/disk/by-path/x"
    assert HostPaths(tmp_path).host_view(tmp_path) == "/"


def test_links_resolve_inside_the_root_even_when_absolute(tmp_path):
    paths = HostPaths(tmp_path)
    (tmp_path / "dev/disk/by-id").mkdir(parents=True)
    relative = tmp_path / "dev/disk/by-id/wwn-0x1"
    relative.symlink_to("../../sda")
    absolute = tmp_path / "dev/disk/by-id/wwn-0x2"
    absolute.symlink_to("/dev/sdb")
    assert paths.resolve_link(relative) == tmp_path / "dev/sda"
    assert paths.resolve_link(absolute) == tmp_path / "dev/sdb"


def test_links_whose_target_is_gone_are_dangling_judged_inside_the_root(tmp_path):
    paths = HostPaths(tmp_path)
    folder = tmp_path / "dev/disk/by-path"
    folder.mkdir(parents=True)
    (tmp_path / "dev/sda").write_text("")
    for name, target in (("live", "../../sda"), ("gone", "../../sdb"), ("absolute", "/dev/sda")):
        (folder / name).symlink_to(target)
    (folder / "absolute-gone").symlink_to("/dev/sdz")
    (folder / "sda").write_text("")  # a name in the link's own folder, not at the root
    (folder / "at-the-root").symlink_to("/sda")
    (folder / "plain").write_text("")  # not a link
    names = ["live", "gone", "absolute", "absolute-gone", "at-the-root", "plain", "vanished"]
    assert paths.dangling(str(folder), names) == ["gone", "absolute-gone", "at-the-root"]
