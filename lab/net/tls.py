"""The lab's own certificate authority: one per run, trusted by nobody outside it.

HTTPS needs a certificate the client trusts. A real site buys one from a
public authority; the lab makes its own authority at the start of a run
(``runs/<run>/tls/ca.pem``), and every service that speaks TLS gets a
certificate from it naming the node, its addresses and its VIPs. Clients in
the lab trust it by being told so (``curl --cacert runs/<run>/tls/ca.pem``);
nothing is installed into the machine's trust store, so the authority dies
with the run directory. Keys are ECDSA P-256 (what a modern site uses) and
the certificates live two days.
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Iterable

CA_NAME = "halab lab CA"


def _key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common: str):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "halab")])


def authority(run_dir: Path) -> tuple[Path, Path]:
    """The run's CA (certificate, key), made on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    tls = run_dir / "tls"
    cert_path, key_path = tls / "ca.pem", tls / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    tls.mkdir(parents=True, exist_ok=True)
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(key, key_path)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def certificate(run_dir: Path, node: str, names: Iterable[str]) -> tuple[str, str]:
    """A certificate for ``node`` signed by the run's CA, valid for ``names`` (host names and addresses): (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert_path, ca_key_path = authority(run_dir)
    tls = run_dir / "tls"
    cert_path, key_path = tls / f"{node}.pem", tls / f"{node}.key"
    if cert_path.exists() and key_path.exists():
        return str(cert_path), str(key_path)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(node)).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    _write_key(key, key_path)
    # the chain a server presents: its own certificate, then the CA's
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_cert_path.read_bytes())
    return str(cert_path), str(key_path)
