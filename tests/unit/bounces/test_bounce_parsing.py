"""Reading DSNs and ARF reports: realistic fixtures and flufl.bounce's own samples."""

from __future__ import annotations

import email
from importlib import resources

import pytest
from flufl.bounce import all_failures

from newsletter.bounces import dsn
from newsletter.models import BounceKind
from tests.helpers import HARD_FORMATS, SOFT_FORMATS, bounce_mail

VERP = "bounces+d1.2.abcdefghijklmnop@example.com"
READER = "alice@mail.example.org"


def token_of(address: str) -> str | None:
    local, _, _ = address.partition("@")
    return local.partition("+")[2] or None if local.startswith("bounces") else None


def parse(name: str, recipient: str = READER) -> dsn.Report:
    return dsn.parse(bounce_mail(name, verp=VERP, recipient=recipient), [], token_of)


@pytest.mark.parametrize("name", HARD_FORMATS)
def test_hard_bounces_in_every_format_name_the_reader_and_the_token(name):
    report = parse(name)
    assert report.kind is BounceKind.HARD
    assert [f.address for f in report.failures] == [READER]
    assert report.tokens == ["d1.2.abcdefghijklmnop"]
    status = report.failures[0].status_code
    assert status is None or status.startswith("5.1."), status  # Yahoo gives no code


@pytest.mark.parametrize("name", SOFT_FORMATS)
def test_delays_and_full_mailboxes_are_soft(name):
    report = parse(name)
    assert report.kind is BounceKind.SOFT
    assert report.failures[0].status_code.startswith("4.")


def test_exim_generic_status_is_refined_from_the_diagnostic():
    assert parse("exim_hard").failures[0].status_code == "5.1.1"


def test_arf_complaint_names_the_feedback_loop_and_the_token():
    report = parse("arf_complaint")
    assert report.kind is BounceKind.COMPLAINT
    assert report.provider == "Yahoo"
    assert "complaint via Yahoo feedback loop" in report.reason
    assert report.tokens == ["d1.2.abcdefghijklmnop"]


def test_arf_token_is_found_in_the_original_return_path_alone():
    raw = bounce_mail("arf_complaint", verp=VERP, recipient=READER).replace(
        b"To: " + VERP.encode(), b"To: fbl@example.com")
    assert dsn.parse(raw, [], token_of).tokens == ["d1.2.abcdefghijklmnop"]


def test_arf_without_original_message_is_not_acted_on():
    report = parse("arf_without_original")
    assert report.kind is BounceKind.UNPARSED
    assert "without the original message" in report.problem


def test_arf_other_than_abuse_is_not_a_complaint():
    raw = bounce_mail("arf_complaint", verp=VERP, recipient=READER).replace(
        b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    report = dsn.parse(raw, [], token_of)
    assert report.kind is BounceKind.UNPARSED and "not-spam" in report.problem


def test_auto_replies_and_garbage_are_not_understood():
    assert parse("vacation").kind is BounceKind.UNPARSED
    for raw in (b"", b"\x00\xff\xfe garbage", b"Subject: x\r\n\r\n" + b"A" * 100_000,
                b"Content-Type: multipart/report; boundary=\"x\"\r\n\r\n--x\r\n--x--",
                b"Content-Type: multipart/mixed; boundary=\"unterminated\r\n\r\n--unterminated"):
        assert dsn.parse(raw, [], token_of).kind is BounceKind.UNPARSED


def test_envelope_recipients_count_as_token_carriers():
    raw = bounce_mail("postfix_hard", verp="someone@else.example", recipient=READER)
    assert dsn.parse(raw, [VERP], token_of).tokens == ["d1.2.abcdefghijklmnop"]


def test_same_bytes_same_fingerprint():
    assert parse("gmail_hard").fingerprint == parse("gmail_hard").fingerprint
    assert parse("gmail_hard").fingerprint != parse("gmail_hard", "bob@x.example").fingerprint


def test_flufl_bounce_sample_messages(capsys):
    """flufl.bounce ships ~115 real bounces from many MTAs: our parser must read them
    all without crashing, and understand the ones the library understands."""
    data = resources.files("flufl.bounce.tests") / "data"
    samples = sorted(p for p in data.iterdir() if p.name.endswith(".txt"))
    assert len(samples) > 100
    understood = 0
    for sample in samples:
        raw = sample.read_bytes()
        temporary, permanent = all_failures(email.message_from_bytes(raw))
        report = dsn.parse(raw, [], token_of)
        if temporary or permanent:
            understood += 1
            assert report.kind in (BounceKind.HARD, BounceKind.SOFT), sample.name
            assert {f.address for f in report.failures} == {
                a.decode().lower() for a in temporary | permanent}, sample.name
        else:
            assert report.kind is BounceKind.UNPARSED, sample.name
    with capsys.disabled():
        print(f"\nflufl.bounce samples: {understood} of {len(samples)} understood as bounces")
    assert understood >= 90
