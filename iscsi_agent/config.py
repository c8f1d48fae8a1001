"""The agent's configuration: the INI schema declared once, parsed once, passed down as frozen values.

Every key of shared/design.md's contract is declared in ``SCHEMA`` with its parser and default;
nothing else reads the file. Unknown sections or keys and bad values stop start-up with a
``ConfigError`` naming the file, section and key, because a typo silently ignored on one host
of a fleet is found only when an attach fails there. Secrets are read from their files here,
once. The file names programs root runs (``iscsiadm``) and secrets may sit in it or beside it,
so agent.conf and the secret files must be root's, writable by no one else, and not links; a
secret must not be readable by everyone. An error never quotes a line of the file: it may be a
secret, and the error goes to the journal of the system.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.errors import AgentError
from iscsi_agent.safe_paths import (
    READABLE_BY_EVERYONE,
    SECRET,
    WRITABLE_BY_OTHERS,
    file_problem,
    open_no_follow,
    open_problem,
)

DEFAULT_PATH = Path("/etc/iscsi-agent/agent.conf")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(AgentError):
    """The configuration cannot be used; the message names file, section and key."""

    code = "bad_config"


@dataclass(frozen=True)
class AgentConfig:
    socket: Path
    socket_mode: int
    socket_group: str | None
    allowed_uids: tuple[int, ...]
    allowed_gids: tuple[int, ...]
    state_dir: Path
    initiator_name_file: Path
    host_root: Path
    workers: int


@dataclass(frozen=True)
class ArrayConfig:
    api: ApiChoice
    hostname: str
    port: int | None
    scheme: str
    username: str
    password: str = field(repr=False)
    password_file: Path | None
    vserver: str
    verify_tls: bool
    ca_bundle: Path | None
    client_cert: Path | None
    client_key: Path | None
    timeout: float
    connect_timeout: float
    igroup_prefix: str
    os_type: str

    def to_settings(self) -> ArraySettings:
        return ArraySettings(
            hostname=self.hostname,
            username=self.username,
            password=self.password,
            vserver=self.vserver,
            port=self.port,
            scheme=self.scheme,
            verify_tls=self.verify_tls,
            ca_bundle=str(self.ca_bundle) if self.ca_bundle else None,
            client_cert=str(self.client_cert) if self.client_cert else None,
            client_key=str(self.client_key) if self.client_key else None,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            api=self.api,
        )


@dataclass(frozen=True)
class IscsiConfig:
    iscsiadm: str
    multipath: bool
    login_timeout: float
    device_timeout: float
    replacement_timeout: int  # seconds; resolved by mode when the file leaves it empty
    chap_username: str
    chap_secret_file: Path | None
    chap_target_username: str  # mutual CHAP: the user the target answers as
    chap_target_secret_file: Path | None
    chap_secret: str = field(repr=False)
    chap_target_secret: str = field(repr=False)
    portal_networks: tuple[Network, ...]
    ifaces: tuple[str, ...]  # network interfaces sessions are bound to; empty: open-iscsi's default iface
    source: Path = DEFAULT_PATH  # the file these came from, named in errors when the secrets are read again

    def read_chap_secrets(self) -> ChapSecrets:
        """The CHAP secrets as their files hold them now, checked as at start (a rotation rewrites them)."""
        return read_chap_secrets(
            self.source,
            self.chap_username,
            self.chap_secret_file,
            self.chap_target_username,
            self.chap_target_secret_file,
        )


@dataclass(frozen=True)
class ChapSecrets:
    secret: str = field(repr=False)  # the initiator's (one-way CHAP); empty without CHAP
    target_secret: str = field(repr=False)  # the target's (mutual CHAP); empty without it


@dataclass(frozen=True)
class ReconcilerConfig:
    interval: float
    remove_stale_devices: bool
    logout_idle_sessions: bool


@dataclass(frozen=True)
class MetricsConfig:
    listen: tuple[str, int] | None


@dataclass(frozen=True)
class Config:
    agent: AgentConfig
    array: ArrayConfig
    iscsi: IscsiConfig
    reconciler: ReconcilerConfig
    metrics: MetricsConfig


# -- value parsers: each takes the raw text and raises ValueError saying what is wrong -------------


def _text(raw: str) -> str:
    return raw


def _optional_text(raw: str) -> str | None:
    return raw or None


def _path(raw: str) -> Path:
    if not raw.startswith("/"):
        raise ValueError("must be an absolute path")
    return Path(raw)


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw else None


def _bool(raw: str) -> bool:
    words = {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }
    if raw.lower() not in words:
        raise ValueError("is not true or false")
    return words[raw.lower()]


def _positive(number: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = number(raw)
        except ValueError:
            raise ValueError(f"is not {name}") from None
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    return parse


_seconds = _positive(float, "a number of seconds")

# How long a session holds I/O while it reconnects before failing it (open-iscsi's
# node.session.timeo.replacement_timeout, the kernel's recovery_tmo). One path must ride out an
# outage (open-iscsi's default); with multipath a dead path must fail soon so that dm-multipath
# retries on another (NetApp's host guide: 5 s).
SINGLE_PATH_REPLACEMENT_TIMEOUT = 120
MULTIPATH_REPLACEMENT_TIMEOUT = 5
MAX_REPLACEMENT_TIMEOUT = 3600


def _replacement_timeout(raw: str) -> int | None:
    """Whole seconds from 1 to an hour; empty: by mode (see ``parse_config``).

    open-iscsi takes any integer, but below 1 I/O fails at the first dropped connection (0) or
    waits for ever on a dead path (negative), and with it every flush and removal of the device;
    beyond an hour no application is still waiting, and such a number is most likely milliseconds.
    """
    if not raw:
        return None
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueError("is not a whole number of seconds") from None
    if seconds < 1:
        raise ValueError("must be at least 1 (0 fails I/O at the first dropped connection, below 0 never)")
    if seconds > MAX_REPLACEMENT_TIMEOUT:
        raise ValueError(
            f"must be at most {MAX_REPLACEMENT_TIMEOUT} (an hour); milliseconds given for seconds?"
        )
    return seconds


def _optional_port(raw: str) -> int | None:
    if not raw:
        return None
    port: int = _positive(int, "a whole number")(raw)
    if port > 65535:
        raise ValueError("is not a TCP port (1-65535)")
    return port


def _mode(raw: str) -> int:
    try:
        mode = int(raw, 8)
    except ValueError:
        raise ValueError("is not an octal file mode such as 0660") from None
    if not 0 <= mode <= 0o777:
        raise ValueError("is not a file mode (0000-0777)")
    return mode


def _id_list(raw: str) -> tuple[int, ...]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not all(item.isdigit() for item in items):
        raise ValueError("is not a comma list of numeric ids")
    return tuple(int(item) for item in items)


def _networks(raw: str) -> tuple[Network, ...]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return tuple(ipaddress.ip_network(item) for item in items)
    except ValueError as exc:
        raise ValueError(f"is not a comma list of networks in CIDR form ({exc})") from None


# Linux's dev_valid_name(): at most IFNAMSIZ - 1 bytes, not "." or "..", no '/', ':' or whitespace
# (':' is taken by alias labels such as eth0:1, which open-iscsi cannot bind to).
MAX_INTERFACE_NAME = 15


def _interface_names(raw: str) -> tuple[str, ...]:
    """A comma list of network interface names as the kernel accepts them, each once."""
    names = [item.strip() for item in raw.split(",") if item.strip()]
    for name in names:
        if len(name.encode()) > MAX_INTERFACE_NAME:
            raise ValueError(f"names {name!r}, longer than {MAX_INTERFACE_NAME} characters (Linux's limit)")
        problem = _interface_name_problem(name)
        if problem:
            raise ValueError(f"names {name!r}, not an interface name ({problem})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"names {', '.join(repeated)} twice")
    return tuple(names)


def _interface_name_problem(name: str) -> str | None:
    if name in (".", ".."):
        return "the kernel refuses . and .."
    for char, what in (("/", "'/'"), (":", "':' (an alias label; open-iscsi binds to interfaces)")):
        if char in name:
            return f"holds {what}"
    if any(char.isspace() for char in name):
        return "holds whitespace"
    return None


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return parse


def _api(raw: str) -> ApiChoice:
    return ApiChoice(_choice(*(choice.value for choice in ApiChoice))(raw))


def _listen(raw: str) -> tuple[str, int] | None:
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError("is not host:port (leave it empty to disable)")
    parsed = _optional_port(port)
    assert parsed is not None
    return host.strip("[]"), parsed


# section -> key -> (parser, default text); the order and defaults are shared/design.md's.
SCHEMA: Mapping[str, Mapping[str, tuple[Callable[[str], Any], str]]] = {
    "agent": {
        "socket": (_path, "/run/iscsi-agent/agent.sock"),
        "socket_mode": (_mode, "0660"),
        "socket_group": (_optional_text, ""),
        "allowed_uids": (_id_list, "0"),
        "allowed_gids": (_id_list, ""),
        "state_dir": (_path, "/var/lib/iscsi-agent"),
        "initiator_name_file": (_path, "/etc/iscsi/initiatorname.iscsi"),
        "host_root": (_path, "/"),
        "workers": (_positive(int, "a whole number"), "16"),
    },
    "array": {
        "api": (_api, "auto"),
        "hostname": (_text, ""),
        "port": (_optional_port, ""),
        "scheme": (_choice("https", "http"), "https"),
        "username": (_text, ""),
        "password": (_text, ""),
        "password_file": (_optional_path, ""),
        "vserver": (_text, ""),
        "verify_tls": (_bool, "true"),
        "ca_bundle": (_optional_path, ""),
        "client_cert": (_optional_path, ""),
        "client_key": (_optional_path, ""),
        "timeout": (_seconds, "30"),
        "connect_timeout": (_seconds, "10"),
        "igroup_prefix": (_text, "openstack-"),
        "os_type": (_text, "linux"),
    },
    "iscsi": {
        "iscsiadm": (_text, "iscsiadm"),
        "multipath": (_bool, "false"),
        "login_timeout": (_seconds, "15"),
        "device_timeout": (_seconds, "30"),
        "replacement_timeout": (_replacement_timeout, ""),
        "chap_username": (_text, ""),
        "chap_secret_file": (_optional_path, ""),
        "chap_target_username": (_text, ""),
        "chap_target_secret_file": (_optional_path, ""),
        "portal_networks": (_networks, ""),
        "ifaces": (_interface_names, ""),
    },
    "reconciler": {
        "interval": (_seconds, "60"),
        "remove_stale_devices": (_bool, "true"),
        "logout_idle_sessions": (_bool, "true"),
    },
    "metrics": {
        "listen": (_listen, "127.0.0.1:9713"),
    },
}
# (section, key) -> why it has no usable default
REQUIRED: Mapping[tuple[str, str], str] = {
    ("array", "hostname"): "the array's management address",
    ("array", "vserver"): "the SVM that owns the LUNs; every LUN, igroup and map call is scoped to it",
}


def load_config(path: Path = DEFAULT_PATH) -> Config:
    """Read, check and resolve the configuration file (secrets included)."""
    text, found = _read_trusted(
        path, WRITABLE_BY_OTHERS, lambda problem: ConfigError(f"{path} {problem}", file=str(path))
    )
    config = parse_config(text, path)
    if config.array.password and config.array.password_file is None and found.st_mode & READABLE_BY_EVERYONE:
        raise _error(
            path, "array", "password", "is in a file readable by everyone (chmod o-r, or use password_file)"
        )
    return config


def parse_config(text: str, path: Path) -> Config:
    """Parse configuration text; ``path`` only names the file in errors."""
    values = _parse_values(text, path)
    for (section, key), why in REQUIRED.items():
        if not values[section][key]:
            raise _error(path, section, key, f"is required ({why})")
    array, iscsi = values["array"], values["iscsi"]
    password = _secret(path, "array", "password", array["password"], array["password_file"])
    chap = read_chap_secrets(
        path,
        iscsi["chap_username"],
        iscsi["chap_secret_file"],
        iscsi["chap_target_username"],
        iscsi["chap_target_secret_file"],
    )
    _check_client_certificate(path, array["client_cert"], array["client_key"])
    if iscsi["replacement_timeout"] is None:
        iscsi["replacement_timeout"] = (
            MULTIPATH_REPLACEMENT_TIMEOUT if iscsi["multipath"] else SINGLE_PATH_REPLACEMENT_TIMEOUT
        )
    return Config(
        agent=AgentConfig(**values["agent"]),
        array=ArrayConfig(**{**array, "password": password}),
        iscsi=IscsiConfig(
            **iscsi, chap_secret=chap.secret, chap_target_secret=chap.target_secret, source=path
        ),
        reconciler=ReconcilerConfig(**values["reconciler"]),
        metrics=MetricsConfig(**values["metrics"]),
    )


def _parse_values(text: str, path: Path) -> dict[str, dict[str, Any]]:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive, as documented
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # from None: the parser's own message quotes the line, which may be a secret
        raise ConfigError(f"{path}: not a valid INI file: {_ini_problem(exc)}", file=str(path)) from None
    for section in parser.sections():
        if section not in SCHEMA:
            raise _error(path, section, None, f"unknown section (known: {', '.join(SCHEMA)})")
        for key in parser[section]:
            if key not in SCHEMA[section]:
                raise _error(path, section, key, "unknown key")
    values: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = parser[section] if parser.has_section(section) else {}
        values[section] = {}
        for key, (parse, default) in keys.items():
            raw = given.get(key, default).strip()
            try:
                values[section][key] = parse(raw)
            except ValueError as exc:
                raise _error(path, section, key, f"{raw!r} {exc}") from None
    return values


def _ini_problem(exc: configparser.Error) -> str:
    """The parser's complaint with line numbers and names but without the text of the line."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before any [section]"
    if isinstance(exc, configparser.ParsingError):
        numbers = [str(number) for number, _ in exc.errors]
        lines = f"lines {', '.join(numbers)} are" if len(numbers) > 1 else f"line {numbers[0]} is"
        return f"{lines} neither a [section] nor key = value"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"line {exc.lineno}: section [{exc.section}] appears twice"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"line {exc.lineno}: [{exc.section}] {exc.option} is set twice"
    return type(exc).__name__


def _secret(path: Path, section: str, key: str, inline: str, secret_file: Path | None) -> str:
    """A secret given inline or (preferred) in a file only root may read."""
    if inline and secret_file:
        raise _error(path, section, f"{key}_file", f"set {key} or {key}_file, not both")
    if secret_file is None:
        return inline
    text, _ = _read_trusted(
        secret_file, SECRET, lambda problem: _error(path, section, f"{key}_file", f"{secret_file} {problem}")
    )
    return text.strip()


def read_chap_secrets(
    path: Path,
    username: str,
    secret_file: Path | None,
    target_username: str,
    target_secret_file: Path | None,
) -> ChapSecrets:
    """Read and check the CHAP secret files: the one-way pair, and the target's pair for mutual CHAP.

    The target proves itself only to an initiator it checks (open-iscsi sends its challenge along
    with its own response), so the target's pair needs the one-way pair. Its secret must differ
    from the initiator's: RFC 3720 (8.2.1) forbids one secret for both directions and ONTAP refuses
    equal inbound and outbound passwords. It must be 12 characters at least (RFC 3720's 96 bits;
    Windows initiators and several targets refuse shorter ones) and fit open-iscsi's record (255
    characters, one line). ONTAP's documentation gives user names 1 to 128 bytes and no length rule
    for the passwords.
    """
    secret = _secret(path, "iscsi", "chap_secret", "", secret_file)
    if username and not secret:
        raise _error(path, "iscsi", "chap_secret_file", "is required when chap_username is set")
    if bool(target_username) != (target_secret_file is not None):
        given, missing = (
            ("chap_target_username", "chap_target_secret_file")
            if target_username
            else ("chap_target_secret_file", "chap_target_username")
        )
        raise _error(path, "iscsi", missing, f"is required when {given} is set")
    if target_secret_file is None:
        return ChapSecrets(secret, "")
    if not username:
        raise _error(
            path,
            "iscsi",
            "chap_target_username",
            "needs one-way CHAP (chap_username and chap_secret_file): the target proves itself "
            "only to an initiator it checks",
        )
    target_secret = _secret(path, "iscsi", "chap_target_secret", "", target_secret_file)
    problem = _target_secret_problem(target_secret, secret)
    if problem:
        raise _error(path, "iscsi", "chap_target_secret_file", f"{target_secret_file} {problem}")
    return ChapSecrets(secret, target_secret)


MIN_TARGET_SECRET, MAX_CHAP_SECRET = 12, 255


def _target_secret_problem(target_secret: str, secret: str) -> str | None:
    """What makes the target's secret unusable, never quoting it."""
    if target_secret == secret:
        return (
            "holds the same secret as chap_secret_file; the array refuses equal inbound and "
            "outbound secrets (and RFC 3720 one secret for both directions)"
        )
    if len(target_secret) < MIN_TARGET_SECRET:
        return f"holds a secret shorter than {MIN_TARGET_SECRET} characters (RFC 3720: 96 bits at least)"
    if len(target_secret) > MAX_CHAP_SECRET:
        return f"holds a secret longer than {MAX_CHAP_SECRET} characters (open-iscsi's limit)"
    if any(ord(char) < 32 or ord(char) == 127 for char in target_secret):
        return "holds a control character (a line break, a tab, ...); open-iscsi's record cannot hold it"
    return None


def _read_trusted(
    path: Path, forbidden: int, refuse: Callable[[str], ConfigError]
) -> tuple[str, os.stat_result]:
    """The text and status of a regular, root-owned file with none of ``forbidden`` in its mode.

    The file is opened without following a link and checked as opened, so it cannot be swapped
    between the check and the read; ``refuse`` turns what is wrong into the error to raise.
    """
    try:
        fd = open_no_follow(path, os.O_RDONLY)
    except OSError as exc:
        raise refuse(open_problem(exc)) from None
    with os.fdopen(fd, encoding="utf-8") as file:
        found = os.fstat(fd)
        problem = file_problem(found, forbidden)
        if problem:
            raise refuse(problem)
        try:
            return file.read(), found
        except OSError as exc:
            raise refuse(f"cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise refuse("is not UTF-8 text") from None


def _check_client_certificate(path: Path, cert: Path | None, key: Path | None) -> None:
    """Both files or neither; the key, which stands in for the password, only root may read or change."""
    if (cert is None) != (key is None):
        given, missing = ("client_cert", "client_key") if key is None else ("client_key", "client_cert")
        raise _error(path, "array", missing, f"is required when {given} is set")
    if cert is None or key is None:
        return
    for setting, file in (("client_cert", cert), ("client_key", key)):
        try:
            info = file.stat()  # the key's, after the loop
        except OSError as exc:
            raise _error(path, "array", setting, f"{file}: {exc.strerror}") from exc
    if info.st_uid != 0:
        raise _error(path, "array", "client_key", f"{key} is owned by uid {info.st_uid}, not root")
    if info.st_mode & 0o077:
        raise _error(
            path,
            "array",
            "client_key",
            f"{key} has mode {stat.S_IMODE(info.st_mode):04o}; only its owner may read it (chmod 600)",
        )


def _error(path: Path, section: str, key: str | None, problem: str) -> ConfigError:
    where = f"[{section}] {key}" if key else f"[{section}]"
    return ConfigError(f"{path} {where}: {problem}", file=str(path), section=section, key=key)
