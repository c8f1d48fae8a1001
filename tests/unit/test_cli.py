"""The `iscsi-agent` command line: exit codes 0 / 1 / 2 and the report it prints."""

import io
from pathlib import Path

import pytest

from iscsi_agent.cli import main
from iscsi_agent.findings import Status, Step


class StubChecker:
    def __init__(self, steps):
        self.steps = steps
        self.configs = []

    def run(self, config):
        self.configs.append(config)
        return self.steps


def run(argv, steps=()):
    out, err = io.StringIO(), io.StringIO()
    checker = StubChecker(list(steps))
    code = main(argv, out=out, err=err, make_checker=lambda root: checker)
    return code, out.getvalue(), err.getvalue(), checker


@pytest.fixture
def conf(tmp_path) -> Path:
    path = tmp_path / "agent.conf"
    path.write_text("[array]\nhostname = cluster1.example\nvserver = svm1\n")
    return path


def test_check_exits_0_when_every_step_passes_and_prints_each(conf):
    code, out, _, checker = run(["check", "--config", str(conf)], [Step("array", Status.OK, "ONTAP 9.13.1")])
    assert code == 0
    assert out.splitlines() == [f"ok       config          {conf}", "ok       array           ONTAP 9.13.1"]
    assert checker.configs[0].array.hostname == "cluster1.example"


def test_a_warning_is_printed_and_still_passes(conf):
    code, out, _, _ = run(["check", "--config", str(conf)], [Step("array security", Status.WARNING, "http")])
    assert code == 0 and "warning  array security  http" in out


def test_check_exits_1_when_a_step_fails(conf):
    code, out, _, _ = run(["--config", str(conf), "check"], [Step("iscsiadm", Status.FAILED, "not found")])
    assert code == 1 and "FAILED   iscsiadm        not found" in out


def test_a_skipped_step_is_not_a_pass(conf):
    assert run(["check", "--config", str(conf)], [Step("svm", Status.SKIPPED, "array not reached")])[0] == 1


def test_an_unusable_configuration_exits_1_naming_it(tmp_path):
    bad = tmp_path / "agent.conf"
    bad.write_text("[array]\nhostname = x\ntimeout = soon\n")
    code, out, _, checker = run(["check", "--config", str(bad)])
    assert code == 1 and f"FAILED   config          {bad} [array] timeout: 'soon'" in out
    assert checker.configs == []


def test_without_a_command_the_daemon_runs_on_the_parsed_configuration(conf):
    started = []
    code = main(["--config", str(conf)], daemon=lambda config: started.append(config) or 0)
    assert code == 0 and started[0].array.vserver == "svm1"


def test_the_daemon_does_not_start_on_an_unusable_configuration(tmp_path):
    bad = tmp_path / "agent.conf"
    bad.write_text("[array]\nhostname = x\nvserver = svm1\nworkers = 0\n")
    err = io.StringIO()
    code = main(["--config", str(bad)], err=err, daemon=lambda config: 0)
    assert code == 1 and "[array] workers: unknown key" in err.getvalue()


def test_a_usage_error_exits_2():
    with pytest.raises(SystemExit) as caught:
        run(["frobnicate"])
    assert caught.value.code == 2
