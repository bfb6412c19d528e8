"""E-mailing the report through a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS
with a certificate made here, login, and the failures a user meets."""

from __future__ import annotations

import datetime as dt
import email
import logging
import shutil
import socket
import ssl
import subprocess
from email import policy
from pathlib import Path

import pytest

from sopforecast.errors import ConfigError, SopforecastError
from sopforecast.monitoring.mail import MailSettings, build_message, send, send_report

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="pip install aiosmtpd")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

USER, PASSWORD = "planner", "s3cret-Pa55word"
TILES = "MAPE 12.3% | bias -1.5%"
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + bytes(range(256))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Store:
    """aiosmtpd handler keeping every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 on failure


@pytest.fixture
def report(tmp_path) -> tuple[Path, Path]:
    html = tmp_path / "accuracy-report.html"
    html.write_text("<!DOCTYPE html><html><body><h1>Accuracy é</h1></body></html>", encoding="utf-8")
    pdf = tmp_path / "accuracy-report.pdf"
    pdf.write_bytes(PDF_BYTES)
    return html, pdf


@pytest.fixture
def smtp_server():
    handler = Store()
    controller = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (with SAN) and its key, as PEM."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    public = private.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture
def tls_server(tmp_path):
    """STARTTLS required, login (only over TLS) accepted for USER / PASSWORD."""
    cert, key = _certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    handler = Store()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, handler, cert
    controller.stop()


def _send(settings, report, to=("a@example.com",)):
    html, pdf = report
    send_report(settings, list(to), html, pdf, subject="S&OP accuracy", summary_html=f"<p>{TILES}</p>")


def test_plain_smtp_delivers_report_with_attachments(smtp_server, report, monkeypatch):
    monkeypatch.delenv("SOPFORECAST_SMTP_USER", raising=False)
    controller, handler = smtp_server
    html, pdf = report
    settings = MailSettings(host="127.0.0.1", port=controller.port, sender="sop@example.com", timeout=10)
    send_report(
        settings,
        ["ann@example.com", "Bob <bob@example.com>"],
        html,
        pdf,
        subject="S&OP accuracy — May",
        summary_html=f'<div class="tiles"><p>{TILES}</p></div>',
    )

    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.mail_from == "sop@example.com"
    assert sorted(envelope.rcpt_tos) == ["ann@example.com", "bob@example.com"]
    msg = email.message_from_bytes(envelope.content, policy=policy.default)
    assert msg["Subject"] == "S&OP accuracy — May"
    assert msg["From"] == "sop@example.com"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@example.com", "bob@example.com"]
    assert msg.get_content_type() == "multipart/mixed"

    body_html = msg.get_body(preferencelist=("html",)).get_content()
    assert TILES in body_html
    assert "accuracy-report.html" in body_html and "attached" in body_html
    body_text = msg.get_body(preferencelist=("plain",)).get_content()
    assert TILES in body_text and "<p>" not in body_text

    parts = list(msg.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("accuracy-report.html", "text/html"),
        ("accuracy-report.pdf", "application/pdf"),
    ]
    assert parts[0].get_content() == html.read_text(encoding="utf-8")
    assert parts[1].get_content() == pdf.read_bytes() == PDF_BYTES


def test_build_message_types_and_address_checks(report):
    html, pdf = report
    msg = build_message(
        sender="s@x.org", to=["t@y.org"], subject="s", html_body="<b>h</b>", text_body="h", attachments=[pdf]
    )
    assert [p.get_content_type() for p in msg.iter_attachments()] == ["application/pdf"]
    with pytest.raises(SopforecastError, match="no recipients"):
        send_report(MailSettings(), [], html, pdf, subject="s", summary_html="")
    with pytest.raises(SopforecastError, match="'planner.example.com' is not an e-mail address"):
        send_report(
            MailSettings(), ["ok@x.org", "planner.example.com"], html, pdf, subject="s", summary_html=""
        )
    with pytest.raises(SopforecastError, match="does not exist"):
        send_report(
            MailSettings(), ["ok@x.org"], html, pdf.with_name("nope.pdf"), subject="s", summary_html=""
        )
    with pytest.raises(SopforecastError, match="one line"):
        build_message(sender="s@x.org", to=["t@y.org"], subject="a\nBcc: x@y.z", html_body="", text_body="")
    with pytest.raises(ConfigError, match="bogus: unknown setting"):
        send({"bogus": 1}, msg)
    with pytest.raises(ValueError, match="exclude each other"):
        MailSettings(ssl=True, starttls=True)


def test_starttls_with_private_ca_and_login(tls_server, report, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    controller, handler, cert = tls_server
    monkeypatch.setenv("SOPFORECAST_SMTP_USER", USER)
    monkeypatch.setenv("SOPFORECAST_SMTP_PASSWORD", PASSWORD)
    settings = MailSettings(port=controller.port, starttls=True, cafile=str(cert), timeout=10)

    _send(settings, report)
    assert len(handler.envelopes) == 1
    assert handler.envelopes[0].rcpt_tos == ["a@example.com"]
    assert any(r.name == "sopforecast.monitoring.mail" for r in caplog.records)

    # the default trust store does not know the self-signed certificate
    with pytest.raises(SopforecastError) as err:
        _send(settings.model_copy(update={"cafile": None}), report)
    text = str(err.value)
    assert f"127.0.0.1:{controller.port}" in text and "certificate" in text and "cafile" in text

    # verify off: no certificate check (test servers only)
    _send(settings.model_copy(update={"cafile": None, "verify": False}), report)
    assert len(handler.envelopes) == 2

    # a wrong password: refused, and neither password shows
    wrong = "Wr0ng-pa55-XYZ"
    monkeypatch.setenv("SOPFORECAST_SMTP_PASSWORD", wrong)
    with pytest.raises(SopforecastError) as err:
        _send(settings, report)
    text = str(err.value)
    assert "refused the login" in text and f"127.0.0.1:{controller.port}" in text
    assert "SOPFORECAST_SMTP_PASSWORD" in text
    assert wrong not in text and PASSWORD not in text and USER not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__

    # user without password: named, before any connection
    monkeypatch.delenv("SOPFORECAST_SMTP_PASSWORD")
    with pytest.raises(SopforecastError, match=r"\$SOPFORECAST_SMTP_PASSWORD is not"):
        _send(settings, report)

    # no STARTTLS against a server that requires it: a hint to set it
    monkeypatch.delenv("SOPFORECAST_SMTP_USER")
    with pytest.raises(SopforecastError, match="requires STARTTLS"):
        _send(settings.model_copy(update={"starttls": False}), report)

    # SMTPS against a STARTTLS port; a login without TLS: both say what to set
    with pytest.raises(SopforecastError, match=r"TLS with the mail server .* failed .* mail\.ssl"):
        _send(settings.model_copy(update={"starttls": False, "ssl": True}), report)
    monkeypatch.setenv("SOPFORECAST_SMTP_USER", USER)
    monkeypatch.setenv("SOPFORECAST_SMTP_PASSWORD", PASSWORD)
    with pytest.raises(SopforecastError, match="does not offer a login .* set mail.starttls"):
        _send(settings.model_copy(update={"starttls": False}), report)

    assert len(handler.envelopes) == 2
    for secret in (PASSWORD, wrong):
        assert secret not in caplog.text
        assert all(secret not in str(r.args) for r in caplog.records)


def test_connection_refused_names_server(report, monkeypatch):
    monkeypatch.delenv("SOPFORECAST_SMTP_USER", raising=False)
    port = _free_port()  # nothing listens there
    with pytest.raises(SopforecastError, match=rf"127\.0\.0\.1:{port}: connection refused; check mail\.host"):
        _send(MailSettings(port=port, timeout=5), report)


def test_silent_server_times_out(report, monkeypatch):
    monkeypatch.delenv("SOPFORECAST_SMTP_USER", raising=False)
    with socket.socket() as listener:  # accepts connections, never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SopforecastError, match=rf"127\.0\.0\.1:{port} did not answer within 0\.5 s"):
            _send(MailSettings(port=port, timeout=0.5), report)


def test_refused_recipients_are_named(smtp_server, report, monkeypatch):
    monkeypatch.delenv("SOPFORECAST_SMTP_USER", raising=False)
    controller, handler = smtp_server
    settings = MailSettings(port=controller.port, timeout=10)
    with pytest.raises(
        SopforecastError, match=r"refused some recipients \(refused@x\.org: 550 .*went to the others"
    ):
        _send(settings, report, to=["ok@x.org", "refused@x.org"])
    assert [e.rcpt_tos for e in handler.envelopes] == [["ok@x.org"]]
    with pytest.raises(SopforecastError, match=rf"127\.0\.0\.1:{controller.port} refused every recipient"):
        _send(settings, report, to=["refused@x.org"])
    assert len(handler.envelopes) == 1
