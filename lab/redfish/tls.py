"""The lab's certificate authority and the BMC front's certificate.

Real iDRACs serve HTTPS only, so the lab's BMCs do too: the client then exercises the same
verification path it uses in production (a site CA file), and a missing or wrong CA is refused
exactly as it would be. The CA lives under `lab_dir/tls/`, which the lab site's `bmc_tls.ca_file`
points at; it is made once per lab and reused, so a client that trusted it keeps trusting it.
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

from lab.atomic import write_atomic

VALID_DAYS = 825  # the longest leaf lifetime that Apple/Chrome-style verifiers still accept


@dataclass(frozen=True)
class LabTls:
    """Paths of the lab CA certificate and of the certificate/key the BMC front serves."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_lab_tls(lab_dir: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> LabTls:
    """Create the lab CA and a server certificate for `hosts` under lab_dir/tls/, unless present."""
    tls_dir = lab_dir / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    paths = LabTls(tls_dir / "ca.pem", tls_dir / "bmc.pem", tls_dir / "bmc.key")
    if all(p.is_file() for p in (paths.ca_file, paths.cert_file, paths.key_file)):
        return paths
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet lab CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet lab BMC")]), ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(paths.key_file, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), private=True)
    _write(paths.cert_file, cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically; keys are 0600 from the first byte, never briefly world-readable."""
    write_atomic(path, data, mode=0o600 if private else 0o644)
