"""VERP tokens: they name one delivery, survive lower-casing, and cannot be forged."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.mail import verp


@pytest.fixture
def app_context():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s1", BOUNCE_KEY="", BOUNCE_DOMAIN="",
                      MAIL_FROM="The Daily <news@Example.com>", LIST_ID="<newsletter.example.com>")
    with app.app_context():
        yield app


def test_round_trip_for_digest_and_outbox_mails(app_context):
    for ref in (verp.DeliveryRef(digest_id=7, subscriber_id=123456789),
                verp.DeliveryRef(outbox_mail_id=42)):
        address = verp.address_for(ref)
        assert address.startswith("bounces+") and address.endswith("@example.com")
        assert len(address.partition("@")[0]) <= 64  # RFC 5321 local-part limit
        token = verp.token_in_address(address)
        assert verp.read_token(token) == ref
        assert verp.read_token(token.upper()) == ref  # some MTAs upper/lower-case


def test_batch_helper_matches_single_addresses(app_context):
    senders = verp.DigestSenders(3)
    assert senders.for_subscriber(99) == verp.address_for(
        verp.DeliveryRef(digest_id=3, subscriber_id=99))


@pytest.mark.parametrize("forged", [
    "", "d1.2", "d1.2.aaaaaaaaaaaaaaaa", "x1.2.aaaaaaaaaaaaaaaa", "d1.2.3." + "a" * 16,
    "d" + "z" * 80 + ".aaaa", "../../etc", "d1.2.\x00",
])
def test_forged_or_malformed_tokens_are_refused(app_context, forged):
    with pytest.raises(verp.BadToken):
        verp.read_token(forged)


def test_a_token_for_one_reader_cannot_be_edited_into_another(app_context):
    token = verp.make_token(verp.DeliveryRef(digest_id=1, subscriber_id=2))
    body, _, mac = token.rpartition(".")
    with pytest.raises(verp.BadToken):
        verp.read_token(f"d1.3.{mac}")


def test_bounce_key_does_not_follow_secret_key_when_set(app_context):
    app_context.config["BOUNCE_KEY"] = "bounce-key"
    token = verp.make_token(verp.DeliveryRef(digest_id=1, subscriber_id=2))
    app_context.config["SECRET_KEY"] = "rotated"
    assert verp.read_token(token).subscriber_id == 2
    app_context.config["BOUNCE_KEY"] = "another"
    with pytest.raises(verp.BadToken):
        verp.read_token(token)


def test_bounce_domain_setting_and_address_checks(app_context):
    app_context.config["BOUNCE_DOMAIN"] = "bounces.example.net"
    address = verp.address_for(verp.DeliveryRef(outbox_mail_id=1))
    assert address.endswith("@bounces.example.net")
    assert verp.is_bounce_address(address) and verp.is_bounce_address("Bounces@BOUNCES.example.net")
    assert not verp.is_bounce_address("bounces+x@example.com")
    assert not verp.is_bounce_address("postmaster@bounces.example.net")
    assert verp.token_in_address("bounces@bounces.example.net") is None


def test_feedback_id_has_four_colon_free_fields(app_context):
    value = verp.feedback_id(12, "<newsletter.example.com>", "Evil: Name <a@ex:ample.com>")
    fields = value.split(":")
    assert len(fields) == 4 and fields[0] == "issue-12" and fields[2] == "digest"
    assert fields[1] == "newsletter.example.com"
