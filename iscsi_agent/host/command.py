"""The one place the agent starts programs: argv lists only, always with a timeout.

Everything that runs a command (iscsiadm, multipath, tgtadm in tests) takes a
``CommandRunner`` so tests can hand in a fake that records argv and replays output.
Secrets (CHAP passwords) passed to a command are masked in logs and in errors.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from iscsi_agent.errors import AgentError

log = logging.getLogger(__name__)

MASK = "***"


class CommandError(AgentError):
    """A program could not be run, or ran and failed."""

    code = "command_failed"


class CommandNotFound(CommandError):
    code = "command_not_found"


class CommandTimeout(CommandError):
    code = "command_timeout"


class CommandFailed(CommandError):
    """The program ran and exited non-zero; callers map exit codes to their own errors."""

    def __init__(self, argv: Sequence[str], exit_code: int, stderr: str, stdout: str = "") -> None:
        super().__init__(
            f"{' '.join(argv)} exited {exit_code}: {stderr.strip() or stdout.strip() or 'no output'}",
            argv=list(argv),
            exit_code=exit_code,
            stderr=stderr,
        )
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout


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
    """Replace every secret in text, so argv and output can be logged or raised safely."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


@dataclass
class SubprocessRunner:
    """Runs programs for real. Never through a shell; stdin is closed."""

    env: dict[str, str] | None = field(default=None)

    def __call__(self, argv: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> CommandResult:
        shown = tuple(mask(arg, secrets) for arg in argv)
        log.debug("running %s", " ".join(shown))
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
                check=False,
            )
        except FileNotFoundError as exc:
            raise CommandNotFound(f"{argv[0]}: program not found", argv=list(shown)) from exc
        except PermissionError as exc:
            raise CommandNotFound(f"{argv[0]}: not executable", argv=list(shown)) from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(
                f"{' '.join(shown)} did not finish within {timeout:g}s", argv=list(shown), timeout=timeout
            ) from exc
        result = CommandResult(shown, done.returncode, mask(done.stdout, secrets), mask(done.stderr, secrets))
        log.debug(
            "%s exited %d; stdout=%r stderr=%r", shown[0], done.returncode, result.stdout, result.stderr
        )
        return result
