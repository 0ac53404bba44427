"""The ``sequences`` commands: the contract, and bad input refused with one line, exit
status 2 and nothing stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.content.articles import MAX_BODY_BYTES
from newsletter.extensions import db
from newsletter.models import Digest, Sequence, SequenceStep


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["sequences", *args])


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))
                     for model in (Sequence, SequenceStep, Digest))


def refused(result) -> str:
    """The one line a refusal prints; fails unless the exit status is 2."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def body(tmp_path):
    path = tmp_path / "welcome.md"
    path.write_text("Hello\n\nGlad you are **here**. <script>alert(1)</script>")
    return str(path)


def test_create_add_steps_and_list(app, client, body):
    from newsletter.content import topics
    from newsletter.db import unit_of_work

    with app.app_context(), unit_of_work():
        topics.create_topic("asia", "Asia")
    assert cli(app, "create", "welcome").exit_code == 0
    result = cli(app, "create", "asia-intro", "--topic", "asia")
    assert result.exit_code == 0 and "asia-intro" in result.output
    for after, subject in (("0s", "Welcome"), ("3d", "Our best pieces")):
        result = cli(app, "add-step", "welcome", "--after", after, "--subject", subject,
                     "--body-file", body)
        assert result.exit_code == 0, result.output
    listed = cli(app, "list")
    assert listed.exit_code == 0
    assert "welcome: no readers yet" in listed.output
    assert "1. after 0s: Welcome — 0 sent, 0 failed, 0 waiting" in listed.output
    assert "2. after 3d: Our best pieces" in listed.output
    assert "asia-intro (topic asia)" in listed.output
    with app.app_context():
        stored = db.session.scalars(select(SequenceStep).order_by(SequenceStep.position)).all()
        # The articles' renderer and sanitiser: Markdown in, no script out.
        assert "<strong>here</strong>" in stored[0].body_html
        assert "<script>" not in stored[0].body_html
        assert [step.delay_seconds for step in stored] == [0, 3 * 86400]


@pytest.mark.parametrize(("after", "subject", "says"), [
    ("ten", "Hi", "not a number and a unit"),
    ("-5m", "Hi", "negative"),
    ("5y", "Hi", "not a number and a unit"),
    ("1s", "Hi\r\nBcc: victim@example.com", "control character"),
    ("1s", "Hi\x00", "control character"),
    ("1s", "Tab\tin it", "control character"),
    ("1s", "   ", "1 to 300"),
    ("1s", "x" * 301, "1 to 300"),
])
def test_bad_step_input_is_refused_and_nothing_stored(app, client, body, after, subject, says):
    assert cli(app, "create", "welcome").exit_code == 0
    before = counts(app)
    line = refused(cli(app, "add-step", "welcome", "--after", after, "--subject", subject,
                       "--body-file", body))
    assert says in line
    assert counts(app) == before


def test_a_body_over_the_article_limit_is_refused(app, client, tmp_path):
    assert cli(app, "create", "welcome").exit_code == 0
    big = tmp_path / "big.md"
    big.write_text("a" * (MAX_BODY_BYTES + 1))
    before = counts(app)
    assert "KB is allowed" in refused(cli(app, "add-step", "welcome", "--after", "1s",
                                          "--subject", "Hi", "--body-file", str(big)))
    empty = tmp_path / "empty.md"
    empty.write_text("  \n")
    assert "empty" in refused(cli(app, "add-step", "welcome", "--after", "1s",
                                  "--subject", "Hi", "--body-file", str(empty)))
    binary = tmp_path / "binary.md"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert "UTF-8" in refused(cli(app, "add-step", "welcome", "--after", "1s",
                                  "--subject", "Hi", "--body-file", str(binary)))
    assert "Cannot read" in refused(cli(app, "add-step", "welcome", "--after", "1s",
                                        "--subject", "Hi", "--body-file",
                                        str(tmp_path / "missing.md")))
    assert counts(app) == before


def test_unknown_names_and_topics_are_refused(app, client, body):
    assert "no topic 'nope'" in refused(cli(app, "create", "welcome", "--topic", "nope"))
    assert counts(app) == (0, 0, 0)
    assert "no sequence named" in refused(cli(app, "add-step", "ghost", "--after", "1s",
                                              "--subject", "Hi", "--body-file", body))
    assert "no sequence named" in refused(cli(app, "enroll", "ghost", "--existing"))
    assert cli(app, "create", "welcome").exit_code == 0
    assert "exists already" in refused(cli(app, "create", "welcome"))
    assert "control characters" in refused(cli(app, "create", "bad\nname"))
    # Enrolling existing readers is never the default.
    assert "--existing" in refused(cli(app, "enroll", "welcome"))
    assert counts(app) == (1, 0, 0)


def test_the_api_lists_sequences_only_for_a_token_with_the_scope(app, client, body):
    from newsletter.db import unit_of_work
    from newsletter.editors import accounts

    assert cli(app, "create", "welcome").exit_code == 0
    assert cli(app, "add-step", "welcome", "--after", "2h", "--subject", "Hi",
               "--body-file", body).exit_code == 0
    with app.app_context(), unit_of_work():
        accounts.create_editor("editor@example.com", "correct horse battery")
        reader, _ = accounts.create_api_token("editor@example.com", "crm", ["sequences:read"])
        other, _ = accounts.create_api_token("editor@example.com", "cms", ["articles:write"])
    assert client.get("/api/v1/sequences").status_code == 401
    denied = client.get("/api/v1/sequences", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403 and denied.json["missing_scope"] == "sequences:read"
    answer = client.get("/api/v1/sequences", headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 200
    [sequence] = answer.json["sequences"]
    assert sequence["name"] == "welcome" and sequence["topic"] is None
    assert sequence["steps"] == [{"id": sequence["steps"][0]["id"], "position": 1,
                                  "after_seconds": 7200, "subject": "Hi", "sent": 0,
                                  "failed": 0, "skipped": 0, "waiting": 0}]


def test_a_step_gets_words_in_another_language_and_a_sequence_quiet_hours(app, client, body,
                                                                          tmp_path):
    app.config["LANGUAGES"] = ("en", "fr")
    french = tmp_path / "bienvenue.md"
    french.write_text("Bonjour et **bienvenue**.")
    cli(app, "create", "welcome")
    cli(app, "add-step", "welcome", "--after", "0s", "--subject", "Welcome", "--body-file", body)
    result = cli(app, "translate", "welcome", "1", "--language", "fr", "--subject", "Bienvenue",
                 "--body-file", str(french))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "step 1 of welcome: own words in fr"
    with app.app_context():
        step = db.session.scalar(select(SequenceStep))
        assert step.translations["fr"]["subject"] == "Bienvenue"
        assert "<strong>bienvenue</strong>" in step.translations["fr"]["body_html"]
        assert step.revision == 2  # workers render it afresh
    # Neither subject nor body: French readers get the default's words again.
    assert cli(app, "translate", "welcome", "1", "--language", "fr").exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(SequenceStep.translations)) is None

    result = cli(app, "window", "welcome", "08:00-20:00")
    assert result.exit_code == 0 and "between 08:00-20:00" in result.output
    assert "welcome (sends 08:00-20:00): no readers yet" in cli(app, "list").output
    with app.app_context():
        assert db.session.execute(select(Sequence.window_start, Sequence.window_end)).one() == (
            480, 1200)
    assert "at any hour" in cli(app, "window", "welcome").output
    with app.app_context():
        assert db.session.scalar(select(Sequence.window_start)) is None


@pytest.mark.parametrize(("args", "says"), [
    (("window", "welcome", "20:00-08:00"), "ends (08:00) before it starts (20:00)"),
    (("window", "welcome", "8h-20h"), "is not a time of day: write HH:MM"),
    (("window", "nope", "08:00-20:00"), "no sequence named 'nope'"),
    (("translate", "welcome", "1", "--language", "de", "--subject", "Hallo"),
     "Unknown language 'de'"),
    (("translate", "welcome", "1", "--language", "en", "--subject", "Hi"),
     "Unknown language 'en'"),  # the default language's words are the step's own
    (("translate", "welcome", "2", "--language", "fr", "--subject", "Salut"),
     "has no step 2"),
    (("translate", "welcome", "1", "--language", "fr", "--subject", "Sa\nlut"),
     "control character"),
])
def test_bad_quiet_hours_and_translations_are_refused(app, client, body, args, says):
    app.config["LANGUAGES"] = ("en", "fr")
    cli(app, "create", "welcome")
    cli(app, "add-step", "welcome", "--after", "0s", "--subject", "Welcome", "--body-file", body)
    assert says in refused(cli(app, *args))
    with app.app_context():
        assert db.session.execute(select(Sequence.window_start, SequenceStep.translations,
                                         SequenceStep.revision).join(
            SequenceStep, SequenceStep.sequence_id == Sequence.id)).one() == (None, None, 1)
