"""Certificates made in the test: a CA, server and client certificates, all PEM files.

Real X.509 (``cryptography``) so that gRPC does real handshakes. Keys are EC P-256:
fast to make, and what cert-manager issues by default.
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

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key as PEM files (and bytes)."""

    cert_file: Path
    key_file: Path

    @property
    def cert(self) -> bytes:
        """The certificate chain, PEM."""
        return self.cert_file.read_bytes()

    @property
    def key(self) -> bytes:
        """The private key, PEM."""
        return self.key_file.read_bytes()


class Authority:
    """A CA that issues certificates into ``directory``.

    Not thread-safe (tests build their certificates up front). Reads the wall clock:
    certificates are valid from a day ago for ``days``.
    """

    def __init__(self, directory: Path, name: str = "dicomcache test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = directory / f"{_slug(name)}.crt"
        self.cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def cert(self) -> bytes:
        """The CA certificate, PEM."""
        return self.cert_file.read_bytes()

    def server(
        self,
        name: str = "server",
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        **kwargs: object,
    ) -> Pair:
        """A server certificate for ``hosts`` (DNS names and IP addresses)."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self.issue(name, names, ExtendedKeyUsageOID.SERVER_AUTH, **kwargs)  # type: ignore[arg-type]

    def client(
        self,
        common_name: str,
        uris: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        **kwargs: object,
    ) -> Pair:
        """A client certificate with this subject CN and these SANs (URIs as SPIFFE ids)."""
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.DNSName(d) for d in dns]
        return self.issue(common_name, names, ExtendedKeyUsageOID.CLIENT_AUTH, **kwargs)  # type: ignore[arg-type]

    def issue(
        self,
        common_name: str,
        names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        *,
        expired: bool = False,
        file_name: str | None = None,
    ) -> Pair:
        """A leaf certificate signed by this CA; ``expired`` makes one that ended yesterday."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 10 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        stem = file_name or _slug(common_name)
        pair = Pair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        pair.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pair


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()
