"""The bounce receiver: an SMTP server for the bounce domain (``bounces serve``).

Point the bounce domain's MX, or a Postfix transport map entry, at it. It
accepts mail only for ``bounces[+TOKEN]@BOUNCE_DOMAIN`` (never relays), refuses
a VERP address whose signature is wrong at RCPT, caps the message size
(BOUNCE_MAX_SIZE, announced in EHLO SIZE; 552 at DATA), and answers 250 only
once the report is committed; on any error it answers 451 so the sending MTA
retries and nothing is lost.

Anyone can mail ``bounces@`` without a token (feedback loops do, legitimately),
so such mail is capped per client and per day at RCPT (``limits``), and intake
keeps only the first few KB of what it cannot tie to a delivery of ours.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller
from flask import Flask

from newsletter.bounces import limits
from newsletter.mail import verp
from newsletter.models import BounceSource

log = logging.getLogger(__name__)
MAX_RECIPIENTS = 20


class BounceHandler:
    def __init__(self, app: Flask):
        self.app = app

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.app.app_context():
            if not verp.is_bounce_address(address):
                log.info("bounce receiver: refused RCPT %r (not our bounce address)", address)
                return "550 5.7.1 Relaying denied: this server only takes bounces"
            token = verp.token_in_address(address)
            if token is not None:
                try:
                    verp.read_token(token)
                except verp.BadToken as error:
                    log.warning("bounce receiver: refused RCPT %r: %s", address, error)
                    return "550 5.1.1 Unknown bounce address"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        if token is None and not getattr(envelope, "tokenless_counted", False):
            refused = await asyncio.get_running_loop().run_in_executor(
                None, self._count_tokenless, session.peer[0] if session.peer else None)
            if refused:
                return refused
            envelope.tokenless_counted = True  # one message counts once, whatever its RCPTs
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _count_tokenless(self, client: str | None) -> str | None:
        """The SMTP refusal for one more tokenless mail from this client, if over a cap."""
        with self.app.app_context():
            try:
                refusal = limits.count_tokenless(client)
            except limits.Unavailable as error:
                log.warning("bounce receiver: limits unavailable (%s); asking to retry", error)
                return "451 4.3.0 Temporary failure, please retry"
        if refusal is limits.Refusal.CLIENT:
            log.warning("bounce receiver: %s is over its daily limit of mail without a token",
                        client)
            return "450 4.7.1 Too many reports from your address today; try again tomorrow"
        if refusal is limits.Refusal.DAILY:
            log.warning("bounce receiver: the daily limit of mail without a token is reached")
            return "452 4.3.1 Too many reports today; try again tomorrow"
        return None

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        # Reading a report costs ~3 s of CPU per MB: a stranger gets less of it.
        if (getattr(envelope, "tokenless_counted", False)
                and len(data) > self.app.config["BOUNCE_TOKENLESS_MAX_SIZE"]):
            return "552 5.3.4 Message too big for a report without a VERP token"
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                None, self._store, data, list(envelope.rcpt_tos))
        except Exception:
            log.exception("bounce receiver: could not record a report; asking to retry")
            return "451 4.3.0 Temporary failure, please retry"
        return f"250 OK {outcome[:200]}"

    def _store(self, data: bytes, recipients: list[str]) -> str:
        from newsletter.bounces import intake
        from newsletter.db import unit_of_work
        from newsletter.extensions import db

        with self.app.app_context():
            try:
                with unit_of_work():  # the 250 goes out only once this has committed
                    return intake.receive_mail(data, BounceSource.SMTP, recipients).summary
            finally:
                db.session.remove()


def make_controller(app: Flask, host: str, port: int) -> Controller:
    return Controller(BounceHandler(app), hostname=host, port=port,
                      data_size_limit=app.config["BOUNCE_MAX_SIZE"], enable_SMTPUTF8=True,
                      server_hostname=verp_domain(app), ident="newsletter bounce receiver")


def verp_domain(app: Flask) -> str:
    with app.app_context():
        return verp.bounce_domain()
