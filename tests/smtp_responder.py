"""A tiny SMTP server for tests (no SMTP library is installed): enough of RFC 5321 for smtplib's
EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA and QUIT, over plaintext, STARTTLS or implicit
TLS. Every command line it receives is kept, so a test can show what crossed the wire."""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


@dataclass
class Transcript:
    commands: list[str] = field(default_factory=list)
    tls_commands: list[str] = field(default_factory=list)  # received after TLS was up
    messages: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def auth_seen(self) -> bool:
        return any(c.upper().startswith("AUTH") for c in self.commands)


@dataclass
class Responder:
    port: int
    transcript: Transcript


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(cert, key) for CN=localhost / IP 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        try:
            if self.server.mode == "ssl":
                conn = self._wrap(conn)
            self._session(conn, tls=self.server.mode == "ssl")
        except (OSError, ssl.SSLError) as exc:
            self.server.transcript.errors.append(f"{type(exc).__name__}: {exc}")

    def _wrap(self, conn: socket.socket) -> socket.socket:
        assert self.server.context is not None
        return self.server.context.wrap_socket(conn, server_side=True)

    def _session(self, conn: socket.socket, tls: bool) -> None:
        conn.sendall(b"220 test ESMTP\r\n")
        self._dialog(conn, tls)

    def _dialog(self, conn: socket.socket, tls: bool) -> None:
        """Answers commands until QUIT; after STARTTLS the same dialog goes on over TLS."""
        reader, send, transcript = conn.makefile("rb"), conn.sendall, self.server.transcript
        offer_starttls = self.server.mode == "starttls" and not tls
        while line := reader.readline():
            command = line.decode().rstrip("\r\n")
            transcript.commands.append(command)
            if tls:
                transcript.tls_commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                send(b"250-test\r\n" + (b"250-STARTTLS\r\n" if offer_starttls else b"")
                     + b"250 AUTH PLAIN LOGIN\r\n")
            elif verb == "STARTTLS" and offer_starttls:
                send(b"220 go ahead\r\n")
                return self._dialog(self._wrap(conn), tls=True)
            elif verb == "AUTH":
                send(b"235 accepted\r\n")
            elif verb == "DATA":
                send(b"354 end with .\r\n")
                transcript.messages.append(_read_data(reader))
                send(b"250 queued\r\n")
            elif verb == "QUIT":
                send(b"221 bye\r\n")
                return None
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                send(b"250 ok\r\n")
            else:
                send(b"502 not implemented\r\n")
        return None


def _read_data(reader: Any) -> bytes:
    lines = []
    while (line := reader.readline()) not in (b".\r\n", b""):
        lines.append(line)
    return b"".join(lines)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.context, self.transcript = mode, context, Transcript()


@contextmanager
def smtp_responder(mode: str = "plain", cert: tuple[Path, Path] | None = None) -> Iterator[Responder]:
    """mode: "plain" (no STARTTLS offered), "starttls" (offered) or "ssl" (implicit TLS)."""
    context = None
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    server = _Server(mode, context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Responder(server.server_address[1], server.transcript)
    finally:
        server.shutdown()
        server.server_close()
