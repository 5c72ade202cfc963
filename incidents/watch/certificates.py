"""Reading an endpoint's TLS certificate: a real handshake with verification (the chain and the host name, as a
browser would), and, when verification fails, a second handshake without it to still read the expiry."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from django.utils import timezone

from .probes import _ssl_context

# OpenSSL's verify codes for a certificate outside its validity dates. The dates are judged by the portal's own
# clock from the certificate itself (expiry has its own stages); the handshake is asked only about trust.
X509_V_ERR_CERT_NOT_YET_VALID = 9
X509_V_ERR_CERT_HAS_EXPIRED = 10


@dataclass(frozen=True)
class CertificateReading:
    not_after: datetime | None
    chain_valid: bool | None  # None: no handshake happened (unreachable, not TLS)
    error: str = ""


def _not_after(der: bytes | None) -> datetime | None:
    if not der:
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _not_before(der: bytes | None) -> datetime | None:
    if not der:
        return None
    return x509.load_der_x509_certificate(der).not_valid_before_utc


def _handshake(hostname: str, port: int, timeout: float, context: ssl.SSLContext) -> bytes | None:
    with (
        socket.create_connection((hostname, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True)


def read_certificate(hostname: str, port: int = 443, *, timeout: float = 5.0) -> CertificateReading:
    try:
        return CertificateReading(_not_after(_handshake(hostname, port, timeout, _ssl_context())), True)
    except ssl.SSLCertVerificationError as error:
        reason = error.verify_message or "verification failed"
        dates_only = error.verify_code in (X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED)
    except (OSError, ssl.SSLError, ValueError) as error:
        text = str(error)
        if isinstance(error, TimeoutError | socket.timeout) or "timed out" in text:
            text = "timed out"
        elif isinstance(error, ConnectionRefusedError):
            text = "connection refused"
        return CertificateReading(None, None, f"no TLS handshake: {text[:200]}")
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        der = _handshake(hostname, port, timeout, unverified)
    except (OSError, ssl.SSLError, ValueError):
        der = None
    if dates_only and der:
        # Trusted chain, outside its dates: expired is an expiry stage; not yet valid (by our clock) is invalid.
        if _not_before(der) > timezone.now():
            return CertificateReading(_not_after(der), False, "certificate invalid: not yet valid")
        return CertificateReading(_not_after(der), True)
    return CertificateReading(_not_after(der), False, f"certificate invalid: {reason}")
