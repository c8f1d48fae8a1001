"""Throw-away CAs and certificates for loopback HTTPS, so clients can verify for real.

Two kinds: the server's (a CA and a leaf for the listening host) and a client's (a CA the
simulated array trusts for client certificates and a leaf for one account: ONTAP maps the
certificate's common name to the user it authenticates).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=7)
PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class CertFiles:
    ca_cert: Path
    server_cert: Path  # the leaf followed by the CA
    server_key: Path


@dataclass(frozen=True)
class ClientCertFiles:
    ca_cert: Path  # what the array is told to trust for client certificates
    cert: Path
    key: Path  # mode 0600


@dataclass(frozen=True)
class _Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ontap-sim"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _new_ca(common_name: str) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(common_name), _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(key, cert)


def _leaf(
    ca: _Issuer, common_name: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName] | None = None
) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name), ca.cert.subject, key.public_key())
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _Issuer(key, cert)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def _host_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        address = ipaddress.ip_address(host)
        if x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    except ValueError:
        names.append(x509.DNSName(host))
    return names


def write_certs(directory: Path, host: str) -> CertFiles:
    """Issue a CA and a leaf valid for ``host``, 127.0.0.1, ::1 and localhost."""
    ca = _new_ca("ontap-sim CA")
    leaf = _leaf(ca, host, ExtendedKeyUsageOID.SERVER_AUTH, _host_names(host))
    files = CertFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.cert.public_bytes(PEM))
    files.server_cert.write_bytes(leaf.cert.public_bytes(PEM) + ca.cert.public_bytes(PEM))
    _write_key(files.server_key, leaf.key)
    return files


def write_client_cert(directory: Path, user: str) -> ClientCertFiles:
    """Issue a client CA and a client certificate whose common name is the account ``user``."""
    ca = _new_ca("ontap-sim client CA")
    leaf = _leaf(ca, user, ExtendedKeyUsageOID.CLIENT_AUTH)
    files = ClientCertFiles(directory / "client-ca.pem", directory / "client.pem", directory / "client.key")
    files.ca_cert.write_bytes(ca.cert.public_bytes(PEM))
    files.cert.write_bytes(leaf.cert.public_bytes(PEM))
    _write_key(files.key, leaf.key)
    return files
