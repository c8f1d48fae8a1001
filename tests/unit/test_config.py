"""The configuration file: the contract's keys and defaults, and errors that name file, section and key."""

import configparser
import ipaddress
import os
from pathlib import Path

import pytest

from iscsi_agent.array.settings import ApiChoice
from iscsi_agent.config import SCHEMA, ConfigError, load_config, parse_config
from tests.second_uid import NOBODY, folder_nobody_can_reach, python_as_nobody

EXAMPLE = Path(__file__).resolve().parents[2] / "agent.conf.example"
CONF = Path("/etc/iscsi-agent/agent.conf")
MINIMAL = "[array]\nhostname = cluster1.example\nvserver = svm1\n"
RT = "[iscsi] replacement_timeout"


def test_a_minimal_file_gets_the_documented_defaults():
    config = parse_config(MINIMAL, CONF)
    assert config.array.connect_timeout == 10.0 and config.array.to_settings().connect_timeout == 10.0
    assert config.array.to_settings().cert is None
    assert config.agent.socket == Path("/run/iscsi-agent/agent.sock")
    assert (
        config.agent.socket_mode == 0o660
        and config.agent.allowed_uids == (0,)
        and config.agent.allowed_gids == ()
    )
    assert (config.array.api, config.array.scheme, config.array.verify_tls, config.array.timeout) == (
        ApiChoice.AUTO,
        "https",
        True,
        30.0,
    )
    assert (config.iscsi.multipath, config.iscsi.login_timeout, config.iscsi.portal_networks) == (
        False,
        15.0,
        (),
    )
    assert config.reconciler.interval == 60.0 and config.metrics.listen == ("127.0.0.1", 9713)
    assert config.agent.workers == 16


def test_values_are_parsed_into_their_types():
    config = parse_config(
        MINIMAL
        + """
api = rest
port = 8443
verify_tls = no
[agent]
socket_mode = 0600
allowed_uids = 0, 107
[iscsi]
portal_networks = 192.168.50.0/24, fd00::/64
[metrics]
listen =
""",
        CONF,
    )
    assert (config.array.api, config.array.port, config.array.verify_tls) == (ApiChoice.REST, 8443, False)
    assert config.agent.socket_mode == 0o600 and config.agent.allowed_uids == (0, 107)
    assert config.iscsi.portal_networks == (
        ipaddress.ip_network("192.168.50.0/24"),
        ipaddress.ip_network("fd00::/64"),
    )
    assert config.metrics.listen is None


@pytest.mark.parametrize(
    ("iscsi", "seconds"),
    [
        ("", 120),  # one path: ride out an outage of up to two minutes (open-iscsi's default)
        ("multipath = true\n", 5),  # NetApp's host guide: fail the path fast, dm-multipath fails over
        ("replacement_timeout = 300\n", 300),
        ("multipath = true\nreplacement_timeout = 20\n", 20),
        ("multipath = true\nreplacement_timeout =\n", 5),
    ],
    ids=["single-path", "multipath", "single-path-given", "multipath-given", "multipath-empty"],
)
def test_the_replacement_timeout_fits_the_mode_unless_it_is_given(iscsi, seconds):
    assert parse_config(MINIMAL + "[iscsi]\n" + iscsi, CONF).iscsi.replacement_timeout == seconds


@pytest.mark.parametrize(
    ("iscsi", "names"),
    [
        ("", ()),  # the default iface: no -I, today's behaviour
        ("ifaces =\n", ()),
        ("ifaces = ens1f0\n", ("ens1f0",)),
        ("ifaces = ens1f0, ens1f1.30 ,\n", ("ens1f0", "ens1f1.30")),
        ("ifaces = storage-a-lng15\n", ("storage-a-lng15",)),
    ],
    ids=["absent", "empty", "one", "two", "fifteen-characters"],
)
def test_ifaces_is_a_comma_list_of_interface_names(iscsi, names):
    assert parse_config(MINIMAL + "[iscsi]\n" + iscsi, CONF).iscsi.ifaces == names


IF = "[iscsi] ifaces"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("storage-a-long16", "longer than 15 characters"),
        ("eth0/1", "holds '/'"),
        ("eth0:1", "holds ':'"),
        ("eth0 eth1", "holds whitespace"),
        ("eth0, eth0", "twice"),
        (".", "refuses . and .."),
        ("..", "refuses . and .."),
    ],
    ids=["too-long", "slash", "colon-alias", "space", "twice", "dot", "dot-dot"],
)
def test_an_interface_name_linux_would_refuse_is_refused_naming_the_key(value, why):
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + f"[iscsi]\nifaces = {value}\n", CONF)
    assert str(caught.value).startswith(f"{CONF} {IF}: ") and why in str(caught.value)


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        (MINIMAL + "[agnet]\n", "[agnet]", "unknown section"),
        (MINIMAL + "timeuot = 5\n", "[array] timeuot", "unknown key"),
        (MINIMAL + "timeout = abc\n", "[array] timeout", "'abc' is not a number of seconds"),
        (MINIMAL + "timeout = 0\n", "[array] timeout", "must be greater than 0"),
        (MINIMAL + "connect_timeout = soon\n", "[array] connect_timeout", "is not a number of seconds"),
        (MINIMAL + "port = 70000\n", "[array] port", "not a TCP port"),
        (MINIMAL + "api = soap\n", "[array] api", "must be one of auto, rest, zapi"),
        (MINIMAL + "verify_tls = maybe\n", "[array] verify_tls", "is not true or false"),
        (MINIMAL + "[agent]\nsocket_mode = 0999\n", "[agent] socket_mode", "octal"),
        (MINIMAL + "[agent]\nstate_dir = var/lib\n", "[agent] state_dir", "absolute path"),
        (MINIMAL + "[agent]\nworkers = 0\n", "[agent] workers", "must be greater than 0"),
        (MINIMAL + "[agent]\nworkers = many\n", "[agent] workers", "is not a whole number"),
        (MINIMAL + "[iscsi]\nportal_networks = 10.0.0.0/33\n", "[iscsi] portal_networks", "CIDR"),
        (MINIMAL + "[iscsi]\nreplacement_timeout = 5s\n", RT, "'5s' is not a whole number of seconds"),
        (MINIMAL + "[iscsi]\nreplacement_timeout = 2.5\n", RT, "is not a whole number of seconds"),
        (MINIMAL + "[iscsi]\nreplacement_timeout = -1\n", RT, "must be at least 1"),
        (MINIMAL + "[iscsi]\nreplacement_timeout = 0\n", RT, "must be at least 1"),
        (MINIMAL + "[iscsi]\nreplacement_timeout = 120000\n", RT, "must be at most 3600"),
        (MINIMAL + "[metrics]\nlisten = 9713\n", "[metrics] listen", "host:port"),
        ("[array]\nusername = admin\nvserver = svm1\n", "[array] hostname", "is required"),
        ("[array]\nhostname = cluster1.example\n", "[array] vserver", "is required"),
        ("[array]\nhostname = cluster1.example\nvserver =   \n", "[array] vserver", "is required"),
        (MINIMAL + "[iscsi]\nchap_username = u\n", "[iscsi] chap_secret_file", "required when chap_username"),
    ],
)
def test_a_bad_file_is_refused_naming_file_section_and_key(text, where, why):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONF)
    assert str(caught.value).startswith(f"{CONF} {where}: ") and why in str(caught.value)
    assert caught.value.code == "bad_config"


def test_a_file_that_is_not_ini_is_refused():
    with pytest.raises(ConfigError, match="not a valid INI file"):
        parse_config("hostname = x\n", CONF)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.conf cannot be opened: No such file"):
        load_config(tmp_path / "missing.conf")


def test_the_password_comes_from_a_private_file_and_never_shows_in_repr(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    config = parse_config(MINIMAL + f"password_file = {secret}\n", CONF)
    assert config.array.password == "s3cret" and "s3cret" not in repr(config)
    assert config.array.to_settings().password == "s3cret"


def test_a_world_readable_password_file_is_refused(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"\[array\] password_file: .* is readable by everyone"):
        parse_config(MINIMAL + f"password_file = {secret}\n", CONF)


def test_password_and_password_file_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="set password or password_file, not both"):
        parse_config(MINIMAL + f"password = x\npassword_file = {tmp_path / 'p'}\n", CONF)


def test_the_chap_secret_comes_from_its_file(tmp_path):
    secret = tmp_path / "chap"
    secret.write_text("chapsecret123")
    secret.chmod(0o600)
    config = parse_config(MINIMAL + f"[iscsi]\nchap_username = u\nchap_secret_file = {secret}\n", CONF)
    assert config.iscsi.chap_secret == "chapsecret123" and "chapsecret123" not in repr(config)


def test_array_settings_carry_what_the_client_needs():
    settings = parse_config(
        MINIMAL + "api = zapi\nusername = admin\nca_bundle = /etc/ca.pem\n", CONF
    ).array.to_settings()
    assert (settings.hostname, settings.api, settings.vserver, settings.ca_bundle, settings.base_url) == (
        "cluster1.example",
        ApiChoice.ZAPI,
        "svm1",
        "/etc/ca.pem",
        "https://cluster1.example:443",
    )


def test_the_example_file_lists_exactly_the_schema_with_its_defaults():
    example = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    example.read_string(EXAMPLE.read_text())
    listed = {section: dict(example[section]) for section in example.sections()}
    declared = {
        section: {key: default for key, (_, default) in keys.items()} for section, keys in SCHEMA.items()
    }
    assert listed == declared
    filled = EXAMPLE.read_text().replace("hostname =\n", "hostname = cluster1.example\n", 1)
    filled = filled.replace("vserver =\n", "vserver = svm1\n", 1)
    assert parse_config(filled, EXAMPLE).array.hostname == "cluster1.example"


def client_files(tmp_path: Path, key_mode: int = 0o600) -> tuple[Path, Path]:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(key_mode)
    return cert, key


def test_certificate_authentication_and_the_connect_timeout_reach_the_array_settings(tmp_path):
    cert, key = client_files(tmp_path)
    text = MINIMAL + f"client_cert = {cert}\nclient_key = {key}\nconnect_timeout = 4\n"
    settings = parse_config(text, CONF).array.to_settings()
    assert settings.cert == (str(cert), str(key)) and settings.connect_timeout == 4.0


@pytest.mark.parametrize(
    ("arrange", "where", "why"),
    [
        (lambda key: key.chmod(0o640), "client_key", "has mode 0640; only its owner may read it (chmod 600)"),
        (lambda key: key.chmod(0o604), "client_key", "has mode 0604; only its owner may read it (chmod 600)"),
        (lambda key: os.chown(key, 65534, 0), "client_key", "is owned by uid 65534, not root"),
        (lambda key: key.unlink(), "client_key", "No such file or directory"),
    ],
    ids=["group-readable", "world-readable", "not-root-owned", "missing"],
)
def test_a_client_key_only_root_may_read_is_required(tmp_path, arrange, where, why):
    cert, key = client_files(tmp_path)
    arrange(key)
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + f"client_cert = {cert}\nclient_key = {key}\n", CONF)
    assert str(caught.value).startswith(f"{CONF} [array] {where}: ") and why in str(caught.value)


def test_a_missing_client_certificate_is_named(tmp_path):
    cert, key = client_files(tmp_path)
    cert.unlink()
    with pytest.raises(ConfigError, match=r"\[array\] client_cert: .*client\.pem: No such file"):
        parse_config(MINIMAL + f"client_cert = {cert}\nclient_key = {key}\n", CONF)


@pytest.mark.parametrize(("given", "missing"), [("client_cert", "client_key"), ("client_key", "client_cert")])
def test_a_client_certificate_and_its_key_come_together(tmp_path, given, missing):
    cert, key = client_files(tmp_path)
    path = cert if given == "client_cert" else key
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + f"{given} = {path}\n", CONF)
    assert str(caught.value) == f"{CONF} [array] {missing}: is required when {given} is set"


# --- who may write the files the agent trusts, and what a parse error may show ----------------


@pytest.mark.parametrize(
    "text",
    [
        "password = Sup3rSecret\n" + MINIMAL,  # before any section header
        MINIMAL + "password = x\n  continued\nSup3rSecret\n",  # a line that is no key = value
    ],
    ids=["before any section", "not key = value"],
)
def test_a_parse_error_names_file_and_line_but_never_quotes_the_line(text):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONF)
    message = str(caught.value)
    assert message.startswith(f"{CONF}: not a valid INI file") and "line " in message
    assert "Sup3rSecret" not in message and "Sup3rSecret" not in repr(caught.value.details)
    assert caught.value.__cause__ is None  # a traceback of the parser's error would quote it


def write(path: Path, text: str, mode: int, uid: int = 0) -> Path:
    path.write_text(text)
    path.chmod(mode)
    os.chown(path, uid, 0)
    return path


def test_a_root_owned_file_only_root_writes_is_read(tmp_path):
    conf = write(tmp_path / "agent.conf", MINIMAL, 0o644)
    assert load_config(conf).array.hostname == "cluster1.example"


@pytest.mark.parametrize(("mode", "uid"), [(0o664, 0), (0o646, 0), (0o600, NOBODY)])
def test_an_agent_conf_others_may_write_is_refused(tmp_path, mode, uid):
    """Its writer could name any program as ``iscsiadm`` and have root run it."""
    conf = write(tmp_path / "agent.conf", MINIMAL, mode, uid)
    with pytest.raises(
        ConfigError, match=rf"^{conf} (is writable by group or others|is owned by uid {NOBODY}, not root)"
    ):
        load_config(conf)


def test_a_world_readable_agent_conf_with_an_inline_password_is_refused(tmp_path):
    conf = write(tmp_path / "agent.conf", MINIMAL + "password = Sup3rSecret\n", 0o644)
    with pytest.raises(ConfigError, match=r"\[array\] password: .*readable by everyone") as caught:
        load_config(conf)
    assert "Sup3rSecret" not in str(caught.value)
    conf.chmod(0o640)
    assert load_config(conf).array.password == "Sup3rSecret"


def test_an_agent_conf_that_is_a_symlink_is_not_followed(tmp_path):
    real = write(tmp_path / "real.conf", MINIMAL, 0o600)
    (tmp_path / "agent.conf").symlink_to(real)
    with pytest.raises(ConfigError, match=r"agent\.conf is a symbolic link"):
        load_config(tmp_path / "agent.conf")


@pytest.mark.parametrize(
    ("mode", "uid", "why"),
    [
        (0o640, NOBODY, f"is owned by uid {NOBODY}, not root"),
        (0o620, 0, "is writable by group or others"),
        (0o602, 0, "is writable by group or others"),
    ],
)
@pytest.mark.parametrize("key", ["password_file", "chap_secret_file"])
def test_a_secret_file_others_own_or_may_write_is_refused(tmp_path, mode, uid, why, key):
    secret = write(tmp_path / "secret", "s3cret", mode, uid)
    section, lines = ("array", "") if key == "password_file" else ("iscsi", "[iscsi]\nchap_username = u\n")
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}: {secret} {why}"):
        parse_config(MINIMAL + lines + f"{key} = {secret}\n", CONF)


@pytest.mark.allow_subprocess
def test_a_secret_file_link_planted_by_another_user_is_not_followed(tmp_path):
    """nobody, who may write the folder, links the secret's name to a root-only file for root to read."""
    target = write(tmp_path / "root-only", "not for the array", 0o600)
    with folder_nobody_can_reach() as folder:
        (folder / "secrets").mkdir()
        os.chown(folder / "secrets", NOBODY, NOBODY)
        link = folder / "secrets" / "p"
        python_as_nobody("import os, sys; os.symlink(sys.argv[1], sys.argv[2])", str(target), str(link))
        assert link.lstat().st_uid == NOBODY
        with pytest.raises(ConfigError, match=rf"\[array\] password_file: {link} is a symbolic link"):
            parse_config(MINIMAL + f"password_file = {link}\n", CONF)


def test_a_secret_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match=r"\[array\] password_file: .*fifo is not a regular file"):
        parse_config(MINIMAL + f"password_file = {fifo}\n", CONF)


# -- mutual CHAP: the target's user and secret ------------------------------------------------------


def chap_lines(
    tmp_path: Path, *, secret: str = "chapsecret123", target: str | None = "targetsecret45"
) -> str:
    """[iscsi] with one-way CHAP, and the target's credentials when ``target`` is a secret."""
    lines = f"[iscsi]\nchap_username = u\nchap_secret_file = {write(tmp_path / 'chap', secret, 0o600)}\n"
    if target is not None:
        target_file = write(tmp_path / "chap-target", target, 0o600)
        lines += f"chap_target_username = svm1-target\nchap_target_secret_file = {target_file}\n"
    return lines


def test_mutual_chap_reads_the_targets_secret_from_its_file_and_never_shows_it(tmp_path):
    config = parse_config(MINIMAL + chap_lines(tmp_path), CONF)
    assert (config.iscsi.chap_target_username, config.iscsi.chap_target_secret) == (
        "svm1-target",
        "targetsecret45",
    )
    assert "targetsecret45" not in repr(config)


def test_without_the_target_keys_chap_stays_one_way(tmp_path):
    config = parse_config(MINIMAL + chap_lines(tmp_path, target=None), CONF)
    assert (config.iscsi.chap_target_username, config.iscsi.chap_target_secret) == ("", "")


@pytest.mark.parametrize(
    ("given", "missing"),
    [("chap_target_username = t\n", "chap_target_secret_file"), (None, "chap_target_username")],
)
def test_the_targets_user_and_secret_file_go_together(tmp_path, given, missing):
    if given is None:
        given = f"chap_target_secret_file = {write(tmp_path / 'target', 'targetsecret45', 0o600)}\n"
    text = MINIMAL + chap_lines(tmp_path, target=None) + given
    with pytest.raises(ConfigError, match=rf"^{CONF} \[iscsi\] {missing}: is required when chap_target_"):
        parse_config(text, CONF)


def test_the_targets_credentials_need_one_way_chap(tmp_path):
    target_file = write(tmp_path / "target", "targetsecret45", 0o600)
    text = MINIMAL + f"[iscsi]\nchap_target_username = t\nchap_target_secret_file = {target_file}\n"
    with pytest.raises(ConfigError, match=r"\[iscsi\] chap_target_username: needs one-way CHAP"):
        parse_config(text, CONF)


def test_the_targets_secret_must_differ_from_the_initiators(tmp_path):
    text = MINIMAL + chap_lines(tmp_path, secret="samesecret1234", target="samesecret1234")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONF)
    assert str(caught.value).startswith(f"{CONF} [iscsi] chap_target_secret_file: {tmp_path / 'chap-target'}")
    assert "same secret as chap_secret_file" in str(caught.value)
    assert "samesecret1234" not in str(caught.value)


@pytest.mark.parametrize(
    ("secret", "why"),
    [("too-short", "shorter than 12"), ("x" * 256, "longer than 255"), ("line\nbreak-secret", "control")],
)
def test_a_target_secret_open_iscsi_or_the_array_cannot_use_is_refused(tmp_path, secret, why):
    with pytest.raises(ConfigError, match=rf"\[iscsi\] chap_target_secret_file: .*{why}") as caught:
        parse_config(MINIMAL + chap_lines(tmp_path, target=secret), CONF)
    assert secret.strip() not in str(caught.value)


@pytest.mark.parametrize(
    ("mode", "uid", "why"),
    [
        (0o640, NOBODY, f"is owned by uid {NOBODY}, not root"),
        (0o620, 0, "is writable by group or others"),
        (0o604, 0, "is readable by everyone"),
    ],
)
def test_a_target_secret_file_others_own_read_or_may_write_is_refused(tmp_path, mode, uid, why):
    lines = chap_lines(tmp_path)
    write(tmp_path / "chap-target", "targetsecret45", mode, uid)
    with pytest.raises(ConfigError, match=rf"\[iscsi\] chap_target_secret_file: .*chap-target {why}"):
        parse_config(MINIMAL + lines, CONF)


def test_a_target_secret_file_that_is_a_link_is_not_followed(tmp_path):
    lines = chap_lines(tmp_path)
    (tmp_path / "chap-target").unlink()
    (tmp_path / "chap-target").symlink_to(write(tmp_path / "elsewhere", "targetsecret45", 0o600))
    with pytest.raises(ConfigError, match=r"\[iscsi\] chap_target_secret_file: .* is a symbolic link"):
        parse_config(MINIMAL + lines, CONF)
