"""E-mail the accuracy report: settings, message building and sending over SMTP.

The SMTP login is never a setting: :class:`MailSettings` only names the environment
variables that hold the user and the password (``SOPFORECAST_SMTP_USER`` and
``SOPFORECAST_SMTP_PASSWORD`` by default), so a settings file can be committed and shared.
Neither value is ever logged, put in a message or an error, or returned: errors say which
variable to check, not what it holds.

Every failure a user can fix (server down, wrong port, TLS or certificate problem, login
refused, recipient refused) raises :class:`~sopforecast.errors.SopforecastError` naming the
server as ``host:port`` and what to check.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import smtplib
import socket
import ssl
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sopforecast.errors import ConfigError, SopforecastError

__all__ = ["MailSettings", "build_message", "send", "send_report"]

logger = logging.getLogger(__name__)


def _check_address(address: str, what: str) -> str:
    """``address`` stripped, if it looks like an e-mail address (``a@b`` or ``Name <a@b>``).

    Raises
    ------
    SopforecastError
        Not a string, empty, a line break (header injection), or no ``local@domain`` part.
    """
    if not isinstance(address, str):
        raise SopforecastError(
            f"{what} {address!r} is not an e-mail address (a text such as name@example.com)"
        )
    text = address.strip()
    if "\r" in text or "\n" in text:
        raise SopforecastError(f"{what} {text!r} contains a line break; give one address per entry")
    _, addr = parseaddr(text)
    local, at, domain = addr.rpartition("@")
    if not text or not at or not local or not domain or any(c.isspace() for c in addr):
        raise SopforecastError(
            f"{what} {text!r} is not an e-mail address: expected name@domain (such as planner@example.com)"
        )
    return text


class MailSettings(BaseModel):
    """How to reach the SMTP server that sends the report.

    ``ssl`` (SMTPS, usually port 465) and ``starttls`` (usually port 587) are mutually
    exclusive; with neither the connection is plain (a local relay on port 25). The login,
    if any, comes from the environment variables named by ``user_env`` and
    ``password_env``: no login is attempted when the user variable is unset or empty.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="SMTP server name or address.")
    port: int = Field(25, ge=1, le=65535, description="SMTP server port (25 relay, 587 STARTTLS, 465 SMTPS).")
    starttls: bool = Field(
        False, description="Upgrade the connection with STARTTLS before login and sending."
    )
    ssl: bool = Field(False, description="Connect with TLS from the start (SMTPS, usually port 465).")
    sender: str = Field("sopforecast@localhost", description="The From address.")
    user_env: str = Field(
        "SOPFORECAST_SMTP_USER", description="Environment variable holding the SMTP user; unset: no login."
    )
    password_env: str = Field(
        "SOPFORECAST_SMTP_PASSWORD", description="Environment variable holding the SMTP password."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for the server before giving up.")
    verify: bool = Field(True, description="Verify the server's TLS certificate and name (keep it on).")
    cafile: str | None = Field(
        None,
        description="CA bundle (PEM) that signed a private server certificate; replaces the system's CAs.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("give the SMTP server's name or address")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        try:
            return _check_address(value, "sender")
        except SopforecastError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("user_env", "password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        value = value.strip()
        if not value or "=" in value or any(c.isspace() for c in value):
            # the value is not echoed: it may be a user or password put here by mistake
            raise ValueError(
                "not an environment variable name (empty, or with a space or '='); give the name of "
                "the variable holding the value, never the user or password itself"
            )
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> MailSettings:
        if self.ssl and self.starttls:
            raise ValueError(
                "ssl (SMTPS, usually port 465) and starttls (usually port 587) exclude each other; set one"
            )
        return self

    @property
    def where(self) -> str:
        """The server as ``host:port`` (``[addr]:port`` for an IPv6 address), for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _settings(value) -> MailSettings:
    """``value`` (settings or their mapping) as :class:`MailSettings`; ``ConfigError`` if invalid."""
    try:
        return MailSettings.model_validate(value)
    except ValidationError as exc:
        raise ConfigError.from_validation(exc, where="mail settings") from None


def _attachment_type(path: Path) -> tuple[str, str]:
    mime, encoding = mimetypes.guess_type(path.name)
    if mime is None or encoding is not None:  # unknown, or compressed (.csv.gz)
        mime = "application/gzip" if encoding == "gzip" else "application/octet-stream"
    maintype, _, subtype = mime.partition("/")
    return maintype, subtype


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    html_body: str,
    text_body: str,
    attachments: Iterable[str | os.PathLike] = (),
) -> EmailMessage:
    """An e-mail with a text and an HTML version of the body, and files attached.

    Parameters
    ----------
    sender : str
        The From address.
    to : sequence of str
        The recipients (at least one).
    subject : str
        The subject, one line.
    html_body, text_body : str
        The body as HTML and as plain text (``multipart/alternative``: mail readers show the
        HTML one, or the text one if they cannot).
    attachments : iterable of path
        Files attached under their own names, typed by extension (``text/html`` for a
        report, ``application/pdf`` for a PDF, ``application/octet-stream`` if unknown).

    Returns
    -------
    email.message.EmailMessage
        ``multipart/mixed`` (``multipart/alternative`` without attachments).

    Raises
    ------
    SopforecastError
        A bad address or subject, or an attachment that cannot be read.
    """
    sender = _check_address(sender, "sender")
    recipients = _check_recipients(to)
    if not isinstance(subject, str) or "\r" in subject or "\n" in subject:
        raise SopforecastError(f"the e-mail subject must be one line of text, got {subject!r}")

    msg = EmailMessage()
    msg["Subject"] = subject.strip()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    domain = parseaddr(sender)[1].rpartition("@")[2]
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(text_body)
    msg.add_alternative(html_body, subtype="html")

    for item in attachments:
        path = Path(item)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SopforecastError(
                f"cannot attach {path}: {exc.strerror or exc}; check the file exists"
            ) from exc
        maintype, subtype = _attachment_type(path)
        params = {}
        if maintype == "text":
            try:
                data.decode("utf-8")
                params["charset"] = "utf-8"
            except UnicodeDecodeError:
                pass
        # bytes are base64-encoded: the file arrives byte for byte, whatever its line lengths
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name, params=params)
    return msg


def _check_recipients(to: Sequence[str]) -> list[str]:
    if isinstance(to, str):
        to = [to]
    recipients = [_check_address(a, "recipient") for a in (to or [])]
    if not recipients:
        raise SopforecastError("no recipients: give at least one e-mail address to send the report to")
    return recipients


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***`` (a server may echo what it was sent)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _server_reply(exc: smtplib.SMTPResponseException) -> str:
    detail = exc.smtp_error
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return f"{exc.smtp_code} {detail}".strip()


def _ssl_context(settings: MailSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=settings.cafile)
    except FileNotFoundError as exc:
        raise SopforecastError(
            f"mail cafile {settings.cafile} not found; give the path of the PEM file with the CA "
            "certificate that signed the mail server's certificate",
            setting="cafile",
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        raise SopforecastError(
            f"mail cafile {settings.cafile} could not be read as PEM certificates ({exc}); "
            "give a PEM file (-----BEGIN CERTIFICATE-----)",
            setting="cafile",
        ) from exc
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _explain(exc: BaseException, settings: MailSettings) -> str:
    """What went wrong talking to the server, and what to check; no credential."""
    where = settings.where
    user_env, password_env = settings.user_env, settings.password_env
    tls_hint = (
        "check that mail.ssl (SMTPS, usually port 465) and mail.starttls (usually port 587) "
        "match what the server speaks on this port"
    )
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (
            f"the TLS certificate of the mail server {where} could not be verified ({reason}); "
            "if the server uses a private or self-signed certificate, set mail.cafile to the PEM "
            "file of the CA certificate that signed it; also check that mail.host is the name "
            "in the certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the mail server {where} failed ({exc.reason or exc}); {tls_hint}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"the mail server {where} refused the login ({_server_reply(exc)}); check the user in "
            f"${user_env} and the password in ${password_env}"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in exc.recipients.items())
        return f"the mail server {where} refused every recipient ({refused}); check the addresses"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        reply = _server_reply(exc)
        if exc.smtp_code == 530:
            return (
                f"the mail server {where} refused to send ({reply}): it requires STARTTLS or a login "
                f"first; set mail.starttls (or mail.ssl) and the login in ${user_env} and ${password_env}"
            )
        return f"the mail server {where} refused the sender {exc.sender} ({reply}); check mail.sender"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        text = str(exc)
        if "AUTH" in text:
            return (
                f"the mail server {where} does not offer a login (SMTP AUTH) on this connection; "
                f"many servers offer it only over TLS: set mail.starttls or mail.ssl, or unset "
                f"${user_env} to send without login"
            )
        if "STARTTLS" in text.upper():
            return f"the mail server {where} does not offer STARTTLS; {tls_hint}"
        return f"the mail server {where} does not support what was asked ({text}); {tls_hint}"
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__  # smtplib reports a reply that never came as a disconnection
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the mail server {where} closed the connection unexpectedly ({exc}); {tls_hint}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail server {where} answered with an error ({_server_reply(exc)})"
    if isinstance(exc, smtplib.SMTPException):
        return f"talking to the mail server {where} failed ({exc})"
    if isinstance(exc, TimeoutError):
        return (
            f"the mail server {where} did not answer within {settings.timeout:g} s; check mail.host, "
            f"mail.port and the network (firewall), and {tls_hint.removeprefix('check ')}"
        )
    if isinstance(exc, socket.gaierror):
        return f"cannot find the mail server {where} ({exc.strerror or exc}); check mail.host"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot connect to the mail server {where}: connection refused; check mail.host and "
            "mail.port and that the SMTP server is running"
        )
    if isinstance(exc, OSError):
        return (
            f"cannot talk to the mail server {where} ({exc.strerror or exc}); check mail.host, "
            "mail.port and the network"
        )
    return f"sending mail through {where} failed ({type(exc).__name__}: {exc})"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _credentials(settings: MailSettings) -> tuple[str | None, str | None]:
    user = os.environ.get(settings.user_env) or None
    if user is None:
        return None, None
    password = os.environ.get(settings.password_env)
    if not password:
        raise SopforecastError(
            f"${settings.user_env} is set but ${settings.password_env} is not: set both to log in "
            f"to the mail server {settings.where}, or neither to send without login"
        )
    return user, password


def send(settings: MailSettings, message: EmailMessage) -> None:
    """Send ``message`` through the SMTP server of ``settings``.

    Connects with SMTPS (``ssl``) or plain SMTP upgraded by STARTTLS (``starttls``), both
    verifying the certificate unless ``verify`` is off (with ``cafile`` as the trusted CAs
    if given); logs in only if the user environment variable is set. The recipients are
    those of the message's To, Cc and Bcc headers.

    Raises
    ------
    SopforecastError
        The server cannot be reached, TLS or the certificate fails, the login is refused, or
        a recipient is refused (then the message went to the others). The message names the
        server (``host:port``) and what to check, never the user or password.
    """
    settings = _settings(settings)
    user, password = _credentials(settings)
    secrets = (password, user)
    context = _ssl_context(settings) if (settings.ssl or settings.starttls) else None
    mode = "SMTPS" if settings.ssl else "STARTTLS" if settings.starttls else "plain SMTP"
    logger.debug("connecting to the mail server %s (%s)", settings.where, mode)

    smtp: smtplib.SMTP | None = None
    try:
        try:
            if settings.ssl:
                smtp = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            if settings.starttls:
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
            if user is not None:
                logger.debug("logging in to %s (user from $%s)", settings.where, settings.user_env)
                smtp.login(user, password)
            refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # from None: the login's frames, which hold the password, stay out of tracebacks
            raise SopforecastError(_scrub(_explain(exc, settings), secrets)) from None
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # sent already; a failed goodbye loses nothing
    finally:
        if smtp is not None:
            smtp.close()

    if refused:
        listed = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in refused.items())
        raise SopforecastError(
            _scrub(
                f"the mail server {settings.where} refused some recipients ({listed}); the message "
                "went to the others; check these addresses",
                secrets,
            )
        )
    logger.info("sent %r through %s", message.get("Subject", ""), settings.where)


class _TextOf(HTMLParser):
    """The text of an HTML fragment, a line per block, without scripts and styles."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "ul"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data) -> None:
        if not self.skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def _html_to_text(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    return parser.text()


def send_report(
    settings: MailSettings,
    to: list[str],
    html_path: str | os.PathLike,
    pdf_path: str | os.PathLike | None,
    *,
    subject: str,
    summary_html: str,
) -> None:
    """E-mail the accuracy report: its KPI summary in the body, the report and PDF attached.

    Parameters
    ----------
    settings : MailSettings
        The SMTP server and sender.
    to : list of str
        The recipients (at least one address, each ``name@domain``).
    html_path, pdf_path : path
        The full report (HTML) and its PDF, attached under their own names.
    subject : str
        The e-mail's subject.
    summary_html : str
        The body's HTML fragment (the KPI tiles), followed by a line saying the full report
        and its PDF are attached; its text is the body's plain-text version.

    Raises
    ------
    SopforecastError
        No recipient or a bad address, a missing report file, or sending failed (see
        :func:`send`).
    """
    settings = _settings(settings)
    recipients = _check_recipients(to)
    html_path = Path(html_path)
    pdf_path = Path(pdf_path) if pdf_path is not None else None  # no PDF without Chromium
    for path, what in ((html_path, "report HTML"), (pdf_path, "report PDF")):
        if path is not None and not path.is_file():
            raise SopforecastError(f"the {what} {path} does not exist; build the report before e-mailing it")

    pdf_text = f" and its PDF ({pdf_path.name})" if pdf_path else ""
    note = f"The full report ({html_path.name}){pdf_text} {'are' if pdf_path else 'is'} attached."
    html_note = f"<p>{escape(note)}</p>"
    html_body = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
        f"{summary_html}\n{html_note}\n</body></html>\n"
    )
    summary_text = _html_to_text(summary_html)
    text_body = f"{summary_text}\n\n{note}\n" if summary_text else f"{note}\n"
    message = build_message(
        sender=settings.sender,
        to=recipients,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        attachments=[p for p in (html_path, pdf_path) if p is not None],
    )
    send(settings, message)
    logger.info("e-mailed the report %s to %d recipient(s)", html_path.name, len(recipients))
