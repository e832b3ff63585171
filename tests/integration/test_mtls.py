"""Optional mTLS: a tenant token is accepted only over a connection whose client certificate names the tenant."""

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loravault.core.base_layout import BaseLayout
from loravault.client import VaultClient
from loravault.core import UnauthenticatedError, UnavailableError
from loravault.server import ServerConfig, ServerState, create_server
from loravault.server.config import MAX_CHUNK_BYTES
from loravault.server.vault import Vault


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key, *, issuer=None, issuer_key=None, sans=(), ca=False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer.subject if issuer else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, bytes]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("loravault test CA", ca_key, ca=True)
    out = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, issuer=ca, issuer_key=ca_key,
                          sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    out["server_cert"], out["server_key"] = server.public_bytes(serialization.Encoding.PEM), _pem(server_key)
    for tenant in ("acme", "mallory"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(tenant, key, issuer=ca, issuer_key=ca_key,
                            sans=[x509.UniformResourceIdentifier(f"loravault-tenant:{tenant}")])
        out[f"{tenant}_cert"], out[f"{tenant}_key"] = cert.public_bytes(serialization.Encoding.PEM), _pem(key)
    for name, data in out.items():
        (tmp_path / name).write_bytes(data)
    return out


@pytest.fixture
def mtls_server(tmp_path: Path, pki, tiny):
    data = tmp_path / "data"
    config = ServerConfig(data_dir=data, port=0, tls_cert=tmp_path / "server_cert", tls_key=tmp_path / "server_key",
                          tls_client_ca=tmp_path / "ca")
    vault = Vault.open(data, base_fingerprint=tiny.fingerprint)
    admin_token = vault.credentials.ensure_admin_token(config.admin_token_path)
    vault.credentials.create_tenant("acme")
    token = vault.credentials.issue_token(role="tenant", tenant="acme").secret
    state = ServerState(vault=vault, base=BaseLayout.of(tiny),
                        max_chunk_bytes=MAX_CHUNK_BYTES)
    server, port = create_server(config, state=state)
    server.start()
    yield f"127.0.0.1:{port}", token, admin_token
    server.stop(None)
    vault.close()


def _client(target, token, pki, who=None):
    return VaultClient(target, token=token, timeout=20, root_certificates=pki["ca"],
                       private_key=pki[f"{who}_key"] if who else None,
                       certificate_chain=pki[f"{who}_cert"] if who else None)


def test_tenant_with_its_own_certificate_is_served(mtls_server, pki):
    target, token, _ = mtls_server
    with _client(target, token, pki, "acme") as acme:
        assert acme.whoami().tenant == "acme"


def test_tenant_token_over_another_tenants_certificate_is_refused(mtls_server, pki):
    target, token, _ = mtls_server
    with _client(target, token, pki, "mallory") as stolen:
        with pytest.raises(UnauthenticatedError, match="certificate names"):
            stolen.whoami()


def test_connection_without_a_client_certificate_is_refused(mtls_server, pki):
    target, token, _ = mtls_server
    with _client(target, token, pki) as anonymous:
        with pytest.raises(UnavailableError):
            anonymous.whoami()
