"""The one place the agent starts programs: argv lists only, always with a timeout.

Everything that runs a command (iscsiadm, multipath, tgtadm in tests) takes a
``CommandRunner`` so tests can hand in a fake that records argv and replays output.
Secrets (CHAP passwords) passed to a command are masked in logs, in results and in errors,
including the exceptions they are raised from.

A timeout is a deadline for the caller, not a request to the program: at the deadline the
program is killed, and if it does not die within ``KILL_GRACE`` (a process in an uninterruptible
kernel wait, such as I/O on a dead iSCSI path, ignores SIGKILL until the kernel returns) it is
left behind and the caller still gets CommandTimeout.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from iscsi_agent.host.errors import CommandError, CommandFailed, CommandNotFound, CommandTimeout

__all__ = [
    "KILL_GRACE",
    "MASK",
    "CommandError",
    "CommandFailed",
    "CommandNotFound",
    "CommandResult",
    "CommandRunner",
    "CommandTimeout",
    "SubprocessRunner",
    "mask",
]

log = logging.getLogger(__name__)

MASK = "***"
# How long a killed program gets to be reaped before it is left behind.
KILL_GRACE = 2.0


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def check(self) -> CommandResult:
        """Return self when the program succeeded, else raise CommandFailed."""
        if self.exit_code != 0:
            raise CommandFailed(self.argv, self.exit_code, self.stderr, self.stdout)
        return self


class CommandRunner(Protocol):
    def __call__(
        self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()
    ) -> CommandResult: ...


def mask(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret in text, so argv and output can be logged or raised safely.

    Longer secrets go first: a secret that contains another must not be left half shown.
    """
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _decode(data: bytes | None) -> str:
    # Programs print whatever bytes they hold (a target alias, a path); a stray byte is not an error.
    return (data or b"").decode("utf-8", errors="replace")


@dataclass
class SubprocessRunner:
    """Runs programs for real. Never through a shell; stdin is closed; output is read as UTF-8."""

    env: dict[str, str] | None = field(default=None)
    kill_grace: float = KILL_GRACE
    # The seam for a test that needs a process which outlives SIGKILL (no harmless program does).
    popen: Callable[..., subprocess.Popen[bytes]] = field(default=subprocess.Popen, repr=False)

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        shown = tuple(mask(arg, secrets) for arg in argv)
        log.debug("running %s", " ".join(shown))
        try:
            process = self.popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
        except FileNotFoundError:
            raise CommandNotFound(f"{shown[0]}: program not found", argv=list(shown)) from None
        except PermissionError:
            raise CommandNotFound(f"{shown[0]}: not executable", argv=list(shown)) from None
        except OSError as exc:
            # The OSError names the program and nothing else, but say it in our words, masked.
            raise CommandError(
                f"{shown[0]}: could not start: {exc.strerror or exc}", argv=list(shown)
            ) from None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Not chained: TimeoutExpired carries the unmasked argv and output.
            self._stop(process, shown)
            raise CommandTimeout(
                f"{' '.join(shown)} did not finish within {timeout:g}s", argv=list(shown), timeout=timeout
            ) from None
        except BaseException:
            self._stop(process, shown)
            raise
        result = CommandResult(
            shown, process.returncode, mask(_decode(stdout), secrets), mask(_decode(stderr), secrets)
        )
        log.debug(
            "%s exited %d; stdout=%r stderr=%r", shown[0], result.exit_code, result.stdout, result.stderr
        )
        return result

    def _stop(self, process: subprocess.Popen[bytes], shown: Sequence[str]) -> None:
        """Kill the program and reap it, but never wait past ``kill_grace`` for a process that cannot die."""
        process.kill()
        try:
            process.wait(timeout=self.kill_grace)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s (pid %s) was killed but has not exited after %gs (blocked in the kernel?); left behind",
                shown[0],
                process.pid,
                self.kill_grace,
            )
        finally:
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
