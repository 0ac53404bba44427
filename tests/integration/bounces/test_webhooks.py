"""Provider webhooks with correctly and wrongly signed requests.

Keys and certificates are made here: the tests cannot reach AWS, SendGrid or
Mailgun. For Amazon SNS the signing certificate is put in the per-process
certificate cache under an https URL on an AWS-looking host (so the fetch itself
is not exercised), and the outbound GET that confirms a subscription is replaced
by a recorder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from newsletter.bounces import webhooks
from newsletter.devstack import free_port
from newsletter.extensions import db
from newsletter.mail import verp
from newsletter.models import BounceEvent, BounceKind, Subscriber, SubscriberStatus
from tests.factories import sent_issue
from tests.helpers import READER

TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"


def certificate(key, host="sns.amazonaws.com"):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


@pytest.fixture
def sns_key(app, monkeypatch):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.setitem(app.config, "WEBHOOK_SNS_TOPIC_ARNS", (TOPIC,))
    monkeypatch.setitem(webhooks._sns_certificates, CERT_URL, certificate(key))
    confirmed: list[str] = []
    monkeypatch.setattr(webhooks, "_confirm_subscription", confirmed.append)
    return SimpleNamespace(key=key, confirmed=confirmed)


def sns_message(signer, kind: str, payload: dict | str, cert_url=CERT_URL, version="1",
                **extra) -> dict:
    message = {"Type": kind, "MessageId": f"m-{time.monotonic_ns()}", "TopicArn": TOPIC,
               "Message": payload if isinstance(payload, str) else json.dumps(payload),
               "Timestamp": "2026-11-28T09:12:03.000Z", "SignatureVersion": version,
               "SigningCertURL": cert_url, **extra}
    fields = webhooks._SNS_FIELDS[kind]
    canonical = "".join(f"{n}\n{message[n]}\n" for n in fields if n in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    key = getattr(signer, "key", signer)
    message["Signature"] = base64.b64encode(
        key.sign(canonical.encode(), padding.PKCS1v15(), digest)).decode()
    return message


def ses_bounce(email: str, permanent=True, source=None) -> dict:
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent" if permanent else "Transient",
                       "bouncedRecipients": [{"emailAddress": email, "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"source": source or "news@example.com",
                     "commonHeaders": {"messageId": "<x@example.com>"}}}


def state(app):
    with app.app_context():
        return (dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all()),
                db.session.scalar(select(func.count()).select_from(BounceEvent)))


def test_ses_bounce_signed_by_sns_is_recorded_with_its_issue(app, client, sns_key):
    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        source = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    for version in ("1", "2"):
        response = client.post("/webhooks/ses", json=sns_message(
            sns_key, "Notification", ses_bounce(READER, source=source), version=version))
        assert response.status_code == 200, response.get_json()
    statuses, count = state(app)
    assert statuses[READER] == SubscriberStatus.BOUNCED and count == 2
    with app.app_context():
        event = db.session.scalar(select(BounceEvent).limit(1))
        assert (event.digest_id, event.provider, event.status_code) == (digest_id, "Amazon SES",
                                                                        "5.1.1")


@pytest.mark.parametrize("forgery", ["tampered", "foreign cert host", "http cert", "topic",
                                     "unsigned", "garbage"])
def test_forged_sns_messages_get_403_and_change_nothing(app, client, sns_key, forgery):
    sent_issue(app, [READER])
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    evil_url = "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem"
    webhooks._sns_certificates[evil_url] = certificate(attacker)
    try:
        message = {
            "tampered": lambda: {**sns_message(sns_key, "Notification", ses_bounce("x@y.z")),
                                 "Message": json.dumps(ses_bounce(READER))},
            "foreign cert host": lambda: sns_message(attacker, "Notification",
                                                     ses_bounce(READER), cert_url=evil_url),
            "http cert": lambda: sns_message(sns_key, "Notification", ses_bounce(READER),
                                             cert_url=CERT_URL.replace("https", "http")),
            "topic": lambda: {**sns_message(sns_key, "Notification", ses_bounce(READER)),
                              "TopicArn": "arn:aws:sns:eu-west-1:666:other"},
            "unsigned": lambda: {k: v for k, v in sns_message(
                sns_key, "Notification", ses_bounce(READER)).items() if k != "Signature"},
            "garbage": lambda: {"Type": "Notification", "Signature": "!!"},
        }[forgery]()
        response = client.post("/webhooks/ses", json=message)
    finally:
        webhooks._sns_certificates.pop(evil_url, None)
    assert response.status_code == 403
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)


def test_sns_subscription_is_confirmed_only_from_an_sns_host(app, client, sns_key):
    good = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    response = client.post("/webhooks/ses", json=sns_message(
        sns_key, "SubscriptionConfirmation", "confirm", SubscribeURL=good, Token="abc"))
    assert response.status_code == 200 and sns_key.confirmed == [good]
    for url in ("https://evil.example/?Action=ConfirmSubscription",
                "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://sns.eu-west-1.amazonaws.com:8443/x"):
        response = client.post("/webhooks/ses", json=sns_message(
            sns_key, "SubscriptionConfirmation", "confirm", SubscribeURL=url, Token="abc"))
        assert response.status_code == 403, url
    assert sns_key.confirmed == [good]


def test_postmark_basic_auth(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_POSTMARK_AUTH", "postmark:s3cret")
    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        sender = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    # Postmark's MessageID is its own; ours is in the bounce it includes (Content).
    postmark_id = "883953f4-6105-42a2-a16a-77a8eac79483"
    event = {"RecordType": "Bounce", "Type": "HardBounce", "ID": 42, "Email": READER,
             "Description": "The server was unable to deliver your message",
             "MessageID": postmark_id,
             "Content": f"Return-Path: <{sender}>\r\nSubject: bounce\r\n\r\n550 5.1.1"}
    for auth in (None, "Basic " + base64.b64encode(b"postmark:wrong").decode(), "Bearer x"):
        headers = {"Authorization": auth} if auth else {}
        assert client.post("/webhooks/postmark", json=event, headers=headers).status_code == 403
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)
    good = {"Authorization": "Basic " + base64.b64encode(b"postmark:s3cret").decode()}
    assert client.post("/webhooks/postmark", data=b"{not json", headers=good).status_code == 400
    assert client.post("/webhooks/postmark", json=event, headers=good).status_code == 200
    assert client.post("/webhooks/postmark", json=event, headers=good).status_code == 200
    statuses, count = state(app)
    assert statuses[READER] == SubscriberStatus.BOUNCED and count == 1  # retry counted once
    with app.app_context():
        assert db.session.scalar(select(BounceEvent.digest_id)) == digest_id
    complaint = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "ID": 43,
                 "Email": READER, "MessageID": postmark_id}
    response = client.post("/webhooks/postmark", json=complaint, headers=good)
    assert response.status_code == 200 and "ignored" in response.get_json()["recorded"][0]
    assert state(app)[0][READER] == SubscriberStatus.BOUNCED  # names none of our messages
    complaint = {**complaint, "ID": 44, "Content": "Message-ID: " + message_id(digest_id, reader)}
    assert client.post("/webhooks/postmark", json=complaint, headers=good).status_code == 200
    assert state(app)[0][READER] == SubscriberStatus.UNSUBSCRIBED


def mailgun_body(key: str, event: dict, timestamp=None, token=None) -> dict:
    timestamp = str(int(timestamp or time.time()))
    token = token or hashlib.sha256(str(time.monotonic_ns()).encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event}


def message_id(digest_id: int, subscriber_id: int) -> str:
    return f"<digest-{digest_id}.{subscriber_id}@example.com>"


def test_mailgun_hmac_freshness_and_replay(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_MAILGUN_SIGNING_KEY", "key-mailgun")
    digest_id, (reader, soft_reader) = sent_issue(app, [READER, "soft@example.net"])
    failed = {"event": "failed", "severity": "permanent", "recipient": READER,
              "delivery-status": {"code": 550, "message": "5.1.1 mailbox unavailable"},
              "message": {"headers": {"message-id": message_id(digest_id, reader)[1:-1]}}}
    assert client.post("/webhooks/mailgun",
                       json=mailgun_body("wrong-key", failed)).status_code == 403
    assert client.post("/webhooks/mailgun", json=mailgun_body(
        "key-mailgun", failed, timestamp=time.time() - 3600)).status_code == 403  # stale
    assert state(app)[1] == 0
    body = mailgun_body("key-mailgun", failed)
    assert client.post("/webhooks/mailgun", json=body).status_code == 200
    assert client.post("/webhooks/mailgun", json=body).status_code == 403  # replayed
    soft = {**failed, "severity": "temporary", "recipient": "soft@example.net",
            "message": {"headers": {"message-id": message_id(digest_id, soft_reader)}}}
    assert client.post("/webhooks/mailgun",
                       json=mailgun_body("key-mailgun", soft)).status_code == 200
    statuses, count = state(app)
    assert statuses == {READER: SubscriberStatus.BOUNCED,
                        "soft@example.net": SubscriberStatus.ACTIVE} and count == 2
    with app.app_context():
        assert db.session.scalar(select(BounceEvent.status_code).where(
            BounceEvent.kind == BounceKind.HARD)) == "5.1.1"


def test_sendgrid_ecdsa_signature(app, client, monkeypatch):
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setitem(app.config, "WEBHOOK_SENDGRID_PUBLIC_KEY",
                        base64.b64encode(public).decode())
    digest_id, (reader, complainer) = sent_issue(app, [READER, "complainer@example.org"])
    body = json.dumps([
        {"email": READER, "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 unknown user", "sg_event_id": "e1",
         "smtp-id": message_id(digest_id, reader)},
        {"email": "complainer@example.org", "event": "spamreport", "sg_event_id": "e2",
         "smtp-id": message_id(digest_id, complainer)},
        {"email": READER, "event": "delivered", "sg_event_id": "e3"},
    ]).encode()

    def post(signing_key, data, timestamp=None):
        timestamp = str(int(timestamp or time.time()))
        signature = base64.b64encode(
            signing_key.sign(timestamp.encode() + data, ec.ECDSA(hashes.SHA256()))).decode()
        return client.post("/webhooks/sendgrid", data=data, content_type="application/json",
                           headers={webhooks.SENDGRID_SIGNATURE: signature,
                                    webhooks.SENDGRID_TIMESTAMP: timestamp})

    assert post(ec.generate_private_key(ec.SECP256R1()), body).status_code == 403
    assert post(key, body, timestamp=time.time() - 3600).status_code == 403
    assert post(key, body).status_code == 200
    statuses, count = state(app)
    assert statuses == {READER: SubscriberStatus.BOUNCED,
                        "complainer@example.org": SubscriberStatus.UNSUBSCRIBED}
    assert count == 2


def test_unknown_unconfigured_and_oversized(app, client, monkeypatch):
    assert client.post("/webhooks/nope", json={}).status_code == 404
    for provider in webhooks.PROVIDERS:  # nothing configured: every endpoint is off
        assert client.post(f"/webhooks/{provider}", json={}).status_code == 404
    monkeypatch.setitem(app.config, "WEBHOOK_POSTMARK_AUTH", "a:b")
    big = b"[" + b"1," * 600_000 + b"1]"
    assert client.post("/webhooks/postmark", data=big,
                       content_type="application/json").status_code == 413
    assert client.get("/webhooks/postmark").status_code == 405


def ses_complaint(email: str, source: str, message_id: str = "<x@example.com>") -> dict:
    return {"notificationType": "Complaint",
            "complaint": {"complaintFeedbackType": "abuse",
                          "complainedRecipients": [{"emailAddress": email}]},
            "mail": {"source": source, "commonHeaders": {"messageId": message_id}}}


@pytest.mark.parametrize("cert_url", [
    "https://sns.s3.amazonaws.com/cert.pem",  # an S3 bucket named "sns"
    "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/cert.pem",  # user info: host is evil
    "https://evil.example@sns.us-east-1.amazonaws.com/cert.pem",  # user info on the real host
    "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
    "https://sns.us-east-1.amazonaws.com:443/cert.pem",
    "https://sns.us-east-1.amazonaws.com./cert.pem",
    "https://SNS.US-EAST-1.AMAZONAWS.COM.evil.com/cert.pem",
    "https://sns.evil.amazonaws.com/cert.pem",
    "https://sns.us-east-1.amazonaws.com%2f.evil.com/cert.pem",
    "https://[::1]/cert.pem",
])
def test_sns_certificate_from_a_forged_host_is_refused(app, client, sns_key, cert_url):
    """The attacker's certificate sits in the cache under the URL (as if the fetch had
    worked): only the host check stands between it and the reader."""
    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        source = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    webhooks._sns_certificates[cert_url] = certificate(attacker)
    try:
        response = client.post("/webhooks/ses", json=sns_message(
            attacker, "Notification", ses_complaint(READER, source), cert_url=cert_url))
    finally:
        webhooks._sns_certificates.pop(cert_url, None)
    assert response.status_code == 403
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)


@pytest.mark.parametrize("host", [
    "sns.us-east-1.amazonaws.com", "sns.us-gov-west-1.amazonaws.com",
    "sns.cn-north-1.amazonaws.com.cn", "sns.ap-southeast-3.amazonaws.com"])
def test_every_real_sns_region_host_is_accepted(app, client, sns_key, host):
    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        source = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    cert_url = f"https://{host}/SimpleNotificationService-abc.pem"
    webhooks._sns_certificates[cert_url] = certificate(sns_key.key)
    try:
        response = client.post("/webhooks/ses", json=sns_message(
            sns_key, "Notification", ses_complaint(READER, source), cert_url=cert_url))
    finally:
        webhooks._sns_certificates.pop(cert_url, None)
    assert response.status_code == 200, response.get_json()
    assert state(app)[0] == {READER: SubscriberStatus.UNSUBSCRIBED}


def test_sns_certificate_not_issued_to_sns_is_refused(app, client, sns_key):
    """A certificate on a real SNS host whose subject is someone else's is not believed."""
    digest_id, (reader,) = sent_issue(app, [READER])
    with app.app_context():
        source = verp.address_for(verp.DeliveryRef(digest_id=digest_id, subscriber_id=reader))
    cert_url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-other.pem"
    webhooks._sns_certificates[cert_url] = certificate(sns_key.key, host="evil.example")
    try:
        response = client.post("/webhooks/ses", json=sns_message(
            sns_key, "Notification", ses_complaint(READER, source), cert_url=cert_url))
    finally:
        webhooks._sns_certificates.pop(cert_url, None)
    assert response.status_code == 403
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)


def test_mailgun_token_of_a_delivered_event_cannot_carry_a_forged_complaint(
        app, client, monkeypatch):
    """Mailgun signs the timestamp and token, not the body: a signature seen once on a
    `delivered` event must not be reusable with another body."""
    monkeypatch.setitem(app.config, "WEBHOOK_MAILGUN_SIGNING_KEY", "key-mailgun")
    digest_id, (reader,) = sent_issue(app, [READER])
    mid = message_id(digest_id, reader)
    delivered = mailgun_body("key-mailgun", {"event": "delivered", "recipient": READER,
                                             "message": {"headers": {"message-id": mid}}})
    assert client.post("/webhooks/mailgun", json=delivered).status_code == 200
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)  # nothing to record
    forged = {**delivered, "event-data": {"event": "complained", "recipient": READER,
                                          "message": {"headers": {"message-id": mid}}}}
    response = client.post("/webhooks/mailgun", json=forged)
    assert response.status_code == 403 and "replayed" in response.get_json()["error"]
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)
    # An unreadable body burns its token too.
    broken = mailgun_body("key-mailgun", {"event": "complained"})
    broken["event-data"] = "junk"
    assert client.post("/webhooks/mailgun", json=broken).status_code == 400
    broken["event-data"] = forged["event-data"]
    assert client.post("/webhooks/mailgun", json=broken).status_code == 403
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)


def test_events_act_only_on_addresses_we_sent_that_message_to(app, client, sns_key,
                                                              monkeypatch):
    """A provider event names a reader by address; it changes them only if the message it
    names (VERP sender or Message-ID) went to them."""
    other = "other@example.org"
    digest_id, (reader, other_id) = sent_issue(app, [READER, other])
    with app.app_context():
        readers_source = verp.address_for(verp.DeliveryRef(digest_id=digest_id,
                                                           subscriber_id=reader))
        db.session.add(Subscriber(email="never@example.org",
                                  email_normalized="never@example.org",
                                  status=SubscriberStatus.ACTIVE))
        db.session.commit()
    attempts = [
        ses_complaint(other, readers_source),  # READER's message, OTHER's address
        ses_complaint(other, "news@example.com"),  # names no message at all
        ses_complaint(other, "news@example.com", message_id=message_id(digest_id, reader)),
        ses_complaint("never@example.org", "news@example.com",
                      message_id=message_id(digest_id, other_id)),
        ses_complaint(other, "news@example.com", message_id=message_id(digest_id + 1, other_id)),
    ]
    for payload in attempts:
        response = client.post("/webhooks/ses",
                               json=sns_message(sns_key, "Notification", payload))
        assert response.status_code == 200
        assert "ignored" in response.get_json()["recorded"][0]
    statuses, count = state(app)
    assert set(statuses.values()) == {SubscriberStatus.ACTIVE} and count == len(attempts)
    with app.app_context():
        actions = set(db.session.scalars(select(BounceEvent.action)))
        kinds = set(db.session.scalars(select(BounceEvent.kind)))
    assert kinds == {BounceKind.UNPARSED} and all("ignored" in a for a in actions)
    # The same complaint naming OTHER's own message does act.
    response = client.post("/webhooks/ses", json=sns_message(
        sns_key, "Notification", ses_complaint(other, "news@example.com",
                                               message_id=message_id(digest_id, other_id))))
    assert response.status_code == 200
    assert state(app)[0][other] == SubscriberStatus.UNSUBSCRIBED


def test_mailgun_without_redis_is_asked_to_retry(app, client, monkeypatch):
    """Whether a token was used lives in Redis: without it, 503 (Mailgun retries), never
    an unchecked event."""
    monkeypatch.setitem(app.config, "WEBHOOK_MAILGUN_SIGNING_KEY", "key-mailgun")
    digest_id, (reader,) = sent_issue(app, [READER])
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.delitem(app.extensions, "bounce_limits", raising=False)
    complained = mailgun_body("key-mailgun", {
        "event": "complained", "recipient": READER,
        "message": {"headers": {"message-id": message_id(digest_id, reader)}}})
    assert client.post("/webhooks/mailgun", json=complained).status_code == 503
    assert state(app) == ({READER: SubscriberStatus.ACTIVE}, 0)
