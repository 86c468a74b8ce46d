"""Self-signed CA and server certificate for the emulator's HTTPS listener.

Azure SDK credentials refuse bearer tokens over plain http, so the emulator
speaks TLS; clients trust it through DIR/ca.pem (REQUESTS_CA_BUNDLE / connection_verify).
The CA is kept in DIR across restarts, so running clients keep trusting a restarted emulator.
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "anycast.nva ARM emulator CA"


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "anycast.nva lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write(path, data, mode):
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _load_ca(tls_dir):
    """The CA of an earlier start, if still valid for a day."""
    try:
        with open(os.path.join(tls_dir, "ca.pem"), "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(os.path.join(tls_dir, "ca.key"), "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError):
        return None
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1):
        return None
    return cert, key


def _new_ca(tls_dir, start, end):
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(os.path.join(tls_dir, "ca.key"), _pem_key(key), 0o600)
    # ca.pem last: its presence means the CA pair is complete.
    _write(os.path.join(tls_dir, "ca.pem"), cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def make_certificates(tls_dir, names=()):
    """Ensure DIR/ca.pem (+ca.key) and write a fresh server.pem/server.key for 127.0.0.1; return their paths.

    names: more DNS names the server certificate is valid for (Azure's public hostnames, for clients
    that cannot be given another endpoint and reach the emulator through `anycast_lab.arm.proxy`)."""
    os.makedirs(tls_dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(minutes=5)
    ca_cert, ca_key = _load_ca(tls_dir) or _new_ca(tls_dir, start, now + datetime.timedelta(days=365))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                                                       + [x509.DNSName(name) for name in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = os.path.join(tls_dir, "server.pem"), os.path.join(tls_dir, "server.key")
    _write(key_path, _pem_key(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path
