"""VERP tokens: they name one delivery, survive lower-casing, and cannot be forged."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.mail import verp


@pytest.fixture
def app_context():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s1", SECRET_KEY_FALLBACKS=[], BOUNCE_KEY="",
                      BOUNCE_KEY_FALLBACKS=[], BOUNCE_DOMAIN="",
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


def test_a_secret_key_rotation_keeps_bounces_of_earlier_mail(app_context):
    token = verp.make_token(verp.DeliveryRef(digest_id=1, subscriber_id=2))
    app_context.config.update(SECRET_KEY="s2", SECRET_KEY_FALLBACKS=["s1"])
    assert verp.read_token(token).subscriber_id == 2
    # Setting BOUNCE_KEY later keeps them too, while s1 is still a fallback.
    app_context.config["BOUNCE_KEY"] = "pinned"
    assert verp.read_token(token).subscriber_id == 2
    app_context.config["SECRET_KEY_FALLBACKS"] = []
    with pytest.raises(verp.BadToken):
        verp.read_token(token)


def test_a_bounce_key_rotation_keeps_bounces_of_earlier_mail(app_context):
    app_context.config["BOUNCE_KEY"] = "k1"
    token = verp.make_token(verp.DeliveryRef(outbox_mail_id=5))
    app_context.config.update(BOUNCE_KEY="k2", BOUNCE_KEY_FALLBACKS=["k1"])
    assert verp.read_token(token).outbox_mail_id == 5
    assert verp.make_token(verp.DeliveryRef(outbox_mail_id=5)) != token  # signed with k2


def test_message_ids_name_the_delivery_without_its_ids(app_context):
    message_ids = verp.MessageIds(7)
    first = message_ids(123456)
    local, _, domain = first.strip("<>").partition("@")
    assert domain == "Example.com" and len(local) == 26
    assert "123456" not in local and "digest" not in local
    assert verp.MessageIds(7)(123456) == first  # a resend carries the same id
    assert message_ids(123457) != first and verp.MessageIds(8)(123456) != first
    assert verp.ref_in_message_id(first) == verp.DeliveryRef(digest_id=7, subscriber_id=123456)
    assert verp.ref_in_message_id(first.upper()) == verp.ref_in_message_id(first)
    app_context.config.update(SECRET_KEY="s2", SECRET_KEY_FALLBACKS=["s1"])
    assert verp.ref_in_message_id(first).subscriber_id == 123456  # after a rotation too
    app_context.config["SECRET_KEY_FALLBACKS"] = []
    assert verp.ref_in_message_id(first) is None  # without the key it names nothing


@pytest.mark.parametrize("message_id, ref", [
    ("<digest-3.44@example.com>", verp.DeliveryRef(digest_id=3, subscriber_id=44)),  # old mail
    ("<digest-3.99999999999@example.com>", None),
    ("<" + "a" * 26 + "@example.com>", None),
    ("<abc@example.com>", None),
    ("", None),
    (None, None),
])
def test_message_ids_not_ours_name_nothing(app_context, message_id, ref):
    assert verp.ref_in_message_id(message_id) == ref


def test_an_edited_message_id_names_nothing(app_context):
    local = verp.MessageIds(7)(42).strip("<>").partition("@")[0]
    edited = ("b" if local[0] != "b" else "c") + local[1:]
    assert verp.ref_in_message_id(f"<{edited}@example.com>") is None


def test_a_sends_message_ids_are_each_what_sealing_alone_gives(app_context):
    # One cipher context seals every Message-ID of a send: ECB keeps nothing between
    # blocks, so each id seals as if alone, and opens again.
    from newsletter.mail.tokens import seal_ids

    message_ids = verp.MessageIds(7)
    for reader in (1, 2, 123456, 2**31 - 1, 1, 99):
        sealed = message_ids(reader).strip("<>").partition("@")[0]
        assert sealed == seal_ids(message_ids.key, "message-id", 7, reader)
        assert verp.ref_in_message_id(message_ids(reader)) == verp.DeliveryRef(
            digest_id=7, subscriber_id=reader)
