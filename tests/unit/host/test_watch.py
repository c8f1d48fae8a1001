"""The inotify watcher on temporary folders: what wakes a pause, what does not, folders that come and
go, and the fallback to the clock where inotify is missing."""

import os
import resource

import pytest

from iscsi_agent.host.watch import FolderWatcher, watching
from tests.fakes import FakeClock

LINK = "ip-127.0.0.1:3260-iscsi-iqn.1992-08.com.netapp:sn.4b1d:vs.3-lun-1"


@pytest.fixture
def by_path(tmp_path):
    folder = tmp_path / "disk" / "by-path"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def watch():
    made = []

    def make(folders):
        made.append(FolderWatcher(folders))
        return made[-1]

    yield make
    for watcher in made:
        watcher.close()


def test_the_watcher_wakes_at_once_on_a_new_link(by_path, watch):
    watcher = watch([by_path])
    assert watcher.pause(0) is False
    (by_path / LINK).symlink_to("../../sda")
    assert watcher.pause(30) is True  # an event is pending, so this does not wait
    assert watcher.pause(0) is False  # and it was drained


def test_a_removed_link_wakes_it(by_path, watch):
    (by_path / LINK).symlink_to("../../sda")
    watcher = watch([by_path])
    (by_path / LINK).unlink()
    assert watcher.pause(30) is True


def test_a_link_renamed_into_place_wakes_it(by_path, watch, tmp_path):
    # udev writes a temporary link and renames it over the real name
    staging = tmp_path / "disk" / ".staging"
    staging.mkdir()
    (staging / LINK).symlink_to("../../sda")
    watcher = watch([by_path])
    os.rename(staging / LINK, by_path / LINK)
    assert watcher.pause(30) is True


def test_changes_elsewhere_do_not_wake_it(by_path, watch, tmp_path):
    other = tmp_path / "disk" / "by-id"
    other.mkdir()
    watcher = watch([by_path])
    (other / "wwn-0x600a0980").symlink_to("../../sda")
    by_path.touch()  # the folder's own times changing is no entry change
    assert watcher.pause(0) is False


def test_a_burst_of_changes_is_one_wake(by_path, watch):
    watcher = watch([by_path])
    for n in range(2000):  # more events than one read of the queue takes
        (by_path / f"{LINK}{n}").symlink_to("../../sda")
    assert watcher.pause(30) is True
    assert watcher.pause(0) is False


def test_several_folders_are_watched(by_path, watch, tmp_path):
    by_id = tmp_path / "disk" / "by-id"
    by_id.mkdir()
    watcher = watch([by_path, by_id, by_path])
    (by_id / "wwn-0x600a0980").symlink_to("../../sda")
    assert watcher.pause(30) is True


def test_a_folder_not_there_yet_is_watched_through_its_parent(tmp_path, watch):
    watcher = watch([tmp_path / "disk" / "by-path"])
    (tmp_path / "disk").mkdir()
    assert watcher.pause(30) is True


def test_links_in_a_folder_made_after_the_watch_began_wake_it(tmp_path, watch):
    # The first iSCSI disk of a host: /dev/disk/by-path does not exist when the wait starts.
    folder = tmp_path / "disk" / "by-path"
    watcher = watch([folder])
    folder.mkdir(parents=True)
    assert watcher.pause(30) is True
    assert watcher.pause(0) is False
    (folder / LINK).symlink_to("../../sda")
    assert watcher.pause(30) is True


def test_a_folder_removed_and_made_again_is_watched_again(by_path, watch):
    # udev removes a link folder it emptied, and makes it again for the next disk.
    watcher = watch([by_path])
    by_path.rmdir()
    assert watcher.pause(30) is True
    by_path.mkdir()
    assert watcher.pause(30) is True
    assert watcher.pause(0) is False
    (by_path / LINK).symlink_to("../../sda")
    assert watcher.pause(30) is True


def test_it_works_with_more_than_1024_descriptors_open(by_path, watch, tmp_path):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"RLIMIT_NOFILE is {soft}")
    anchor = os.open(tmp_path / "anchor", os.O_CREAT | os.O_RDONLY)
    spares = []
    try:
        while len(spares) < 1100:
            spares.append(os.dup(anchor))
        watcher = watch([by_path])
        assert watcher.fileno() >= 1024  # select() refuses descriptors this high
        (by_path / LINK).symlink_to("../../sda")
        assert watcher.pause(30) is True
    finally:
        for fd in (anchor, *spares):
            os.close(fd)


def test_a_closed_watcher_refuses_to_pause_and_closes_once(by_path):
    watcher = FolderWatcher([by_path])
    watcher.close()
    watcher.close()
    assert watcher.closed
    with pytest.raises(ValueError, match="closed"):
        watcher.pause(0)


def test_watching_pauses_on_inotify_and_closes_the_watcher_after(by_path, watch):
    made = []

    def make(folders):
        made.append(watch(folders))
        return made[-1]

    with watching([by_path], FakeClock().sleep, make_watcher=make) as pause:
        (by_path / LINK).symlink_to("../../sda")
        assert pause(30) is None
        assert not made[0].closed
    assert made[0].closed


def test_without_inotify_the_fallback_pause_is_used(tmp_path):
    def no_inotify(folders):
        raise OSError(38, "Function not implemented")

    clock = FakeClock()
    with watching([tmp_path], clock.sleep, make_watcher=no_inotify) as pause:
        assert pause == clock.sleep
