"""The real SubprocessRunner, on harmless programs: exit codes, output, missing programs, deadlines,
and secrets masked everywhere they could show (result, error, its traceback, the log)."""

import logging
import os
import subprocess
import sys
import time
import traceback

import pytest

from iscsi_agent.errors import AgentError
from iscsi_agent.host.command import (
    MASK,
    CommandError,
    CommandFailed,
    CommandNotFound,
    CommandTimeout,
    SubprocessRunner,
    mask,
)
from iscsi_agent.host.errors import HostError

SECRET = "hunter2-Secr3t"
# Prints its arguments to stdout and stderr, then fails: a program that would give a secret away.
ECHO_ARGS_AND_FAIL = ["/bin/sh", "-c", 'echo "args: $*"; echo "err: $*" >&2; exit 6', "sh"]

pytestmark = pytest.mark.allow_subprocess


@pytest.fixture
def run():
    return SubprocessRunner()


def test_a_program_that_succeeds(run):
    result = run(["/bin/true"], timeout=10)
    assert (result.argv, result.exit_code, result.stdout, result.stderr) == (("/bin/true",), 0, "", "")
    assert result.check() is result


def test_exit_code_and_both_streams_come_back(run):
    result = run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_check_raises_command_failed_with_the_facts(run):
    with pytest.raises(CommandFailed, match=r"exited 3: err") as caught:
        run(["/bin/sh", "-c", "echo err >&2; exit 3"], timeout=10).check()
    assert caught.value.exit_code == 3
    assert caught.value.details == {
        "argv": ["/bin/sh", "-c", "echo err >&2; exit 3"],
        "exit_code": 3,
        "stderr": "err\n",
    }


def test_a_program_killed_by_a_signal_has_a_negative_exit_code(run):
    assert run(["/bin/sh", "-c", "kill -9 $$"], timeout=10).exit_code == -9


def test_output_that_is_not_utf8_does_not_break_the_run(run):
    result = run(["/bin/sh", "-c", r"printf 'alias \377\n'"], timeout=10)
    assert result.stdout == "alias \ufffd\n"


def test_the_environment_can_be_given(run):
    result = SubprocessRunner(env={"ISCSI_AGENT_TEST": "set"})(
        ["/bin/sh", "-c", 'echo "$ISCSI_AGENT_TEST"'], timeout=10
    )
    assert result.stdout == "set\n"


def test_stdin_is_closed(run):
    assert run(["/bin/cat"], timeout=10).stdout == ""


def test_a_missing_program_is_command_not_found(run, tmp_path):
    with pytest.raises(CommandNotFound, match="program not found") as caught:
        run([str(tmp_path / "no-such-program"), SECRET], timeout=10, secrets=[SECRET])
    assert caught.value.details["argv"] == [str(tmp_path / "no-such-program"), MASK]


def test_a_file_that_is_not_executable_is_command_not_found(run, tmp_path):
    program = tmp_path / "not-executable"
    program.write_text("#!/bin/sh\n")
    with pytest.raises(CommandNotFound, match="not executable"):
        run([str(program)], timeout=10)


def test_a_hung_program_is_killed_at_its_deadline(run):
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"sleep 5 did not finish within 0.2s") as caught:
        run(["sleep", "5"], timeout=0.2)
    assert time.monotonic() - started < 3
    assert caught.value.details == {"argv": ["sleep", "5"], "timeout": 0.2}


def test_the_secret_is_masked_in_argv_output_and_the_failure(run):
    result = run([*ECHO_ARGS_AND_FAIL, "--password", SECRET], timeout=10, secrets=[SECRET])
    assert SECRET not in repr(result)
    assert result.stdout == f"args: --password {MASK}\n"
    assert result.stderr == f"err: --password {MASK}\n"
    with pytest.raises(CommandFailed) as caught:
        result.check()
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.details)


def test_the_secret_never_reaches_the_log(run, caplog):
    caplog.set_level(logging.DEBUG, logger="iscsi_agent.host.command")
    run([*ECHO_ARGS_AND_FAIL, SECRET], timeout=10, secrets=[SECRET])
    assert caplog.records, "the runner logs what it runs at DEBUG"
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_the_secret_is_not_in_a_timeout_or_anything_it_was_raised_from(run):
    with pytest.raises(CommandTimeout) as caught:
        run(["/bin/sh", "-c", "sleep 5", "sh", SECRET], timeout=0.2, secrets=[SECRET])
    shown = "".join(traceback.format_exception(caught.value))
    assert MASK in str(caught.value)
    assert SECRET not in shown  # subprocess.TimeoutExpired names the unmasked argv: not chained


def test_a_secret_that_contains_another_is_masked_whole():
    assert mask("pw=abcdef", ["abc", "abcdef"]) == f"pw={MASK}"
    assert mask("nothing to hide", ["", "x" * 3]) == "nothing to hide"


class _UnkillablePopen:
    """A process in an uninterruptible kernel wait: it outlives SIGKILL (no harmless program can)."""

    def __init__(self, argv, **kwargs):
        self.pid = 4242
        self.killed = False
        self.stdout = open(os.devnull, "rb")  # noqa: SIM115 - closed by the runner
        self.stderr = open(os.devnull, "rb")  # noqa: SIM115

    def communicate(self, timeout):
        raise subprocess.TimeoutExpired(["unkillable", SECRET], timeout)

    def kill(self):
        self.killed = True

    def wait(self, timeout):
        raise subprocess.TimeoutExpired(["unkillable", SECRET], timeout)


def test_a_program_that_outlives_sigkill_is_left_behind_and_the_deadline_holds(caplog):
    made = []

    def popen(argv, **kwargs):
        made.append(_UnkillablePopen(argv, **kwargs))
        return made[-1]

    runner = SubprocessRunner(popen=popen, kill_grace=0.1)
    with pytest.raises(CommandTimeout, match="did not finish within 1s"):
        runner(["blockdev", "--flushbufs", "/dev/sdx"], timeout=1)
    assert made[0].killed and made[0].stdout.closed and made[0].stderr.closed
    assert "left behind" in caplog.text and "pid 4242" in caplog.text


def test_command_errors_are_host_errors():
    for error in (CommandError, CommandNotFound, CommandTimeout, CommandFailed):
        assert issubclass(error, HostError) and issubclass(error, AgentError)
    assert (CommandNotFound.code, CommandTimeout.code, CommandFailed.code) == (
        "command_not_found",
        "command_timeout",
        "command_failed",
    )


def test_argv_is_never_put_through_a_shell(run):
    result = run([sys.executable, "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME"], timeout=30)
    assert result.stdout == "['a b', '$HOME']\n"
