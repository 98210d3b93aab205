"""The mail transport (issue 16, groundwork): MIME messages, a real SMTP server on loopback
(aiosmtpd), failures classified as permanent or temporary, STARTTLS and implicit TLS with a
certificate made by the test, and the local mailbox."""

from __future__ import annotations

import email
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.mail import (
    LocalMailbox,
    MailConfigError,
    Outcome,
    SmtpMailer,
    build_message,
    make_mailer,
    parse_smtp_url,
    sender_for,
)
from bot.settings import Settings

SENDER = "Demo Vocational College <noreply@demo-college.example>"
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
UNSUBSCRIBE = "https://gradtrack.example/u/tok_3Jq9"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    """What the test server was given, and what it answers to RCPT."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)

    def parsed(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(data, policy=policy.default)
            for _from, _to, data in self.messages
        ]


class Handler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.received.refuse:
            return self.received.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 Message accepted"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"gradtrack",
        b"p@ss w0rd",
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def server() -> Iterator[tuple[int, Received]]:
    """A plain SMTP server on a loopback port."""
    received = Received()
    port = free_port()
    controller = Controller(Handler(received), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@dataclass
class Certificate:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made here; the client trusts
    only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    return Certificate(server_context, client_context)


def invitation(to: str, subject: str, **extra: Any) -> EmailMessage:
    return build_message(
        sender=SENDER,
        to=to,
        subject=subject,
        text="Hallo Anna,\n\nopen je vragenlijst: https://gradtrack.example/c/abc\n",
        html='<p>Hallo Anna,</p><p><a href="https://gradtrack.example/c/abc">Open</a></p>',
        now=NOW,
        **extra,
    )


# ---------------------------------------------------------------- configuration


def test_smtp_urls() -> None:
    """Proves the three schemes, their default ports, percent-decoded credentials, STARTTLS
    required once there is a user name, and plain text refused off loopback."""
    config = parse_smtp_url("smtp://gradtrack:p%40ss%20w0rd@mail.school.example")
    assert (config.host, config.port, config.security) == ("mail.school.example", 587, "starttls")
    assert (config.username, config.password) == ("gradtrack", "p@ss w0rd")
    assert config.require_starttls
    assert not parse_smtp_url("smtp://relay.school.example:2525").require_starttls
    assert parse_smtp_url("smtps://u:p@mail.example").port == 465
    assert parse_smtp_url("smtps://u:p@mail.example").security == "tls"
    assert parse_smtp_url("smtp+insecure://127.0.0.1:2525").security == "none"
    assert parse_smtp_url("smtp+insecure://localhost").port == 25
    for bad in ("smtp+insecure://mail.example", "http://mail.example", "smtp://", "x"):
        with pytest.raises(MailConfigError):
            parse_smtp_url(bad)


def test_mail_from_is_required_with_an_smtp_server(tmp_path: Path) -> None:
    with pytest.raises(MailConfigError, match="MAIL_FROM is not set"):
        sender_for("smtp://mail.example", "")
    with pytest.raises(MailConfigError, match="one address"):
        sender_for("smtp://mail.example", "not an address")
    assert sender_for("", "") == "gradtrack <noreply@gradtrack.invalid>"
    assert sender_for("smtp://mail.example", f" {SENDER} ") == SENDER
    assert isinstance(make_mailer("", tmp_path), LocalMailbox)
    assert isinstance(make_mailer("smtps://u:p@mail.example", tmp_path), SmtpMailer)


def test_the_local_mailbox_lives_next_to_the_database() -> None:
    def at(url: str) -> Path:
        return Settings(database_url=url, _env_file=None).mailbox_dir

    assert at("sqlite+aiosqlite:///var/gradtrack.sqlite3") == Path("var/mailbox")
    assert at("sqlite+aiosqlite:////srv/data/gt.db") == Path("/srv/data/mailbox")
    assert at("postgresql://postgres@127.0.0.1/test") == Path("var/mailbox")


# ---------------------------------------------------------------- a real SMTP server


async def test_a_message_arrives_with_its_headers_and_both_parts(
    server: tuple[int, Received],
) -> None:
    """Proves that a message sent to aiosmtpd on loopback arrives with From, To, Date,
    Message-ID, UTF-8 subjects in Estonian and Spanish (RFC 2047 encoded on the wire),
    the RFC 8058 one-click unsubscribe headers, and a text and an HTML part in UTF-8; two
    messages go over one connection."""
    port, received = server
    mailer = SmtpMailer(parse_smtp_url(f"smtp+insecure://127.0.0.1:{port}"))
    subjects = {
        "juri@kool.example.ee": "Küsitlus: kuidas sul läheb? Õnnitleme lõpetamise puhul!",
        "lucia@correo.example.es": "¿Qué tal te va? Encuesta de seguimiento — Año 2026",
    }
    sent = []
    for to, subject in subjects.items():
        message = invitation(to, subject, unsubscribe_url=UNSUBSCRIBE)
        result = await mailer.send(message)
        assert result.outcome == Outcome.SENT and result.sent
        assert result.message_id == message["Message-ID"]
        sent.append(message)
    await mailer.close()

    assert [(f, t) for f, t, _data in received.messages] == [
        ("noreply@demo-college.example", ["juri@kool.example.ee"]),
        ("noreply@demo-college.example", ["lucia@correo.example.es"]),
    ]
    raw = received.messages[0][2]
    assert b"=?utf-8?" in raw.lower()  # the subject is encoded on the wire
    for message, original, (to, subject) in zip(
        received.parsed(), sent, subjects.items(), strict=True
    ):
        assert message["Subject"] == subject
        assert message["To"] == to
        assert message["From"] == SENDER
        assert message["Message-ID"] == original["Message-ID"]
        assert message["Message-ID"].endswith("@demo-college.example>")
        assert message["Date"] == "Thu, 03 Dec 2026 09:30:00 +0000"
        assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        assert "https://gradtrack.example/c/abc" in parts[0].get_content()
        assert '<a href="https://gradtrack.example/c/abc">' in parts[1].get_content()
    assert len({m["Message-ID"] for m in received.parsed()}) == 2


async def test_without_an_unsubscribe_url_there_is_no_list_unsubscribe() -> None:
    message = build_message(sender=SENDER, to="a@b.example", subject="Hi", text="text only")
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message.get_content_type() == "text/plain"


async def test_refusals_are_permanent_for_5xx_and_temporary_for_4xx(
    server: tuple[int, Received],
) -> None:
    """Proves a 550 to RCPT is a permanent failure (the address bounces), a 451 a temporary
    one (try later), each with the server's code, and that the connection still serves the
    next message."""
    port, received = server
    received.refuse = {
        "gone@school.example": "550 5.1.1 <gone@school.example>: mailbox unavailable",
        "busy@school.example": "451 4.3.0 greylisted, try again later",
    }
    mailer = SmtpMailer(parse_smtp_url(f"smtp+insecure://127.0.0.1:{port}"))
    gone = await mailer.send(invitation("gone@school.example", "Vragenlijst"))
    busy = await mailer.send(invitation("busy@school.example", "Vragenlijst"))
    fine = await mailer.send(invitation("fine@school.example", "Vragenlijst"))
    await mailer.close()
    assert (gone.outcome, gone.code, gone.permanent) == (Outcome.PERMANENT, 550, True)
    assert "mailbox unavailable" in gone.detail
    assert (busy.outcome, busy.code, busy.permanent) == (Outcome.TEMPORARY, 451, False)
    assert fine.sent
    assert [t for _f, t, _d in received.messages] == [["fine@school.example"]]


async def test_a_server_that_is_down_is_a_temporary_failure() -> None:
    """Proves a refused connection (nothing listens on the port) is temporary, not a bounce,
    and the mailer sends once the server is up."""
    port = free_port()
    mailer = SmtpMailer(parse_smtp_url(f"smtp+insecure://127.0.0.1:{port}"), timeout=5)
    down = await mailer.send(invitation("anna@school.example", "Vragenlijst"))
    assert down.outcome == Outcome.TEMPORARY and down.code is None
    received = Received()
    controller = Controller(Handler(received), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        up = await mailer.send(invitation("anna@school.example", "Vragenlijst"))
        await mailer.close()
    finally:
        controller.stop()
    assert up.sent and len(received.messages) == 1


async def test_starttls_and_login_with_a_self_signed_certificate(
    certificate: Certificate,
) -> None:
    """Proves smtp:// with a user name upgrades the connection with STARTTLS (the server
    refuses AUTH before it), logs in and delivers; a client that does not trust the
    certificate fails temporarily, without sending."""
    received = Received()
    port = free_port()
    controller = Controller(
        Handler(received),
        hostname="127.0.0.1",
        port=port,
        tls_context=certificate.server,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
        auth_required=True,
    )
    controller.start()
    try:
        url = f"smtp://gradtrack:p%40ss%20w0rd@127.0.0.1:{port}"
        mailer = SmtpMailer(parse_smtp_url(url), tls_context=certificate.client)
        result = await mailer.send(invitation("anna@school.example", "Vragenlijst"))
        await mailer.close()
        untrusting = SmtpMailer(parse_smtp_url(url), tls_context=ssl.create_default_context())
        refused = await untrusting.send(invitation("bram@school.example", "Vragenlijst"))
        await untrusting.close()
        wrong = SmtpMailer(
            parse_smtp_url(f"smtp://gradtrack:wrong@127.0.0.1:{port}"),
            tls_context=certificate.client,
        )
        bad_login = await wrong.send(invitation("cees@school.example", "Vragenlijst"))
        await wrong.close()
    finally:
        controller.stop()
    assert result.sent, result
    assert refused.outcome == Outcome.TEMPORARY
    assert bad_login.outcome == Outcome.TEMPORARY and bad_login.code == 535
    assert [t for _f, t, _d in received.messages] == [["anna@school.example"]]


async def test_implicit_tls(certificate: Certificate) -> None:
    """Proves smtps:// speaks TLS from the first byte."""
    received = Received()
    port = free_port()
    controller = Controller(
        Handler(received),
        hostname="127.0.0.1",
        port=port,
        ssl_context=certificate.server,
        authenticator=authenticator,
        # aiosmtpd sees TLS only when it was STARTTLS; this connection is TLS from the start.
        auth_require_tls=False,
    )
    controller.start()
    try:
        url = f"smtps://gradtrack:p%40ss%20w0rd@127.0.0.1:{port}"
        mailer = SmtpMailer(parse_smtp_url(url), tls_context=certificate.client)
        result = await mailer.send(invitation("anna@school.example", "Vragenlijst"))
        await mailer.close()
    finally:
        controller.stop()
    assert result.sent, result
    assert len(received.messages) == 1


# ---------------------------------------------------------------- the local mailbox


async def test_the_local_mailbox_writes_parseable_eml_files_and_an_index(tmp_path: Path) -> None:
    """Proves that with no SMTP server each message is an .eml file that parses back to the
    same headers and parts, listed in index.jsonl in the order sent."""
    mailbox = LocalMailbox(tmp_path / "mailbox")
    subjects = ["Küsitlus: kuidas sul läheb?", "¿Qué tal te va?"]
    sent = [
        invitation(to, subject, unsubscribe_url=UNSUBSCRIBE)
        for to, subject in zip(["juri@kool.example.ee", "lucia@example.es"], subjects, strict=True)
    ]
    for message in sent:
        assert (await mailbox.send(message)).sent
    entries = mailbox.entries()
    assert [e["subject"] for e in entries] == subjects
    assert [e["to"] for e in entries] == ["juri@kool.example.ee", "lucia@example.es"]
    assert sorted(p.name for p in (tmp_path / "mailbox").glob("*.eml")) == [
        e["file"] for e in entries
    ]
    for entry, original in zip(entries, sent, strict=True):
        assert entry["message_id"] == original["Message-ID"]
        data = (tmp_path / "mailbox" / entry["file"]).read_bytes()
        parsed = email.message_from_bytes(data, policy=policy.default)
        assert parsed["Subject"] == original["Subject"]
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed.get_content_type() == "multipart/alternative"
        html = parsed.get_body(("html",))
        assert html is not None and "gradtrack.example/c/abc" in html.get_content()
    # A line torn by a crash while writing is skipped, not fatal.
    with (tmp_path / "mailbox" / "index.jsonl").open("a") as index:
        index.write('{"file": "torn')
    assert len(LocalMailbox(tmp_path / "mailbox").entries()) == 2
