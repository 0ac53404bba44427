"""Editors write sequences in the workspace: create, add, edit, reorder, preview and
test-send steps; the per-step report and the readers. Bad input is a 400, nothing stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from newsletter.db import unit_of_work
from newsletter.extensions import db
from newsletter.models import Digest, DigestStatus, Sequence, SequenceStep, Subscriber, utcnow
from newsletter.sequences import runner
from tests.factories import add_editor, add_subscribers, session_client
from tests.helpers import audit_rows, csrf_token_from

pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def editor(app):
    return session_client(app, add_editor(app, "editor@example.com", "editor"))


def post(client, path: str, **data):
    return client.post(path, data={"csrf_token": csrf_token_from(client, "/admin/sequences/"),
                                   **data})


def stored_steps(app) -> list[tuple[int, str, int]]:
    with app.app_context():
        return [(step.position, step.subject, step.revision) for step in db.session.scalars(
            select(SequenceStep).order_by(SequenceStep.position))]


def test_an_editor_writes_a_sequence_and_sees_where_readers_are(app, editor, mailbox):
    created = post(editor, "/admin/sequences/", name="welcome", topic="")
    assert created.status_code == 302
    with app.app_context():
        sequence_id = db.session.scalar(select(Sequence.id))
    page = f"/admin/sequences/{sequence_id}"
    for after, subject in (("0s", "Hello"), ("2d", "Our best")):
        assert post(editor, f"{page}/steps", after=after, subject=subject,
                    body="Some **words**").status_code == 302
    assert stored_steps(app) == [(1, "Hello", 1), (2, "Our best", 1)]
    with app.app_context():
        first, second = db.session.scalars(select(SequenceStep.id).order_by(
            SequenceStep.position)).all()

    # Reorder, edit, preview, test.
    assert post(editor, f"/admin/sequences/steps/{second}/up").status_code == 302
    assert stored_steps(app) == [(1, "Our best", 1), (2, "Hello", 1)]
    assert post(editor, f"/admin/sequences/steps/{first}", after="1h", subject="Hello again",
                body="New *words*").status_code == 302
    assert stored_steps(app) == [(1, "Our best", 1), (2, "Hello again", 2)]
    preview = editor.get(f"/admin/sequences/steps/{first}/preview")
    assert preview.status_code == 200 and b"<em>words</em>" in preview.data
    text = editor.get(f"/admin/sequences/steps/{first}/preview?part=text").get_data(True)
    assert text.startswith("Subject: Hello again") and "New *words*" in text
    assert post(editor, f"/admin/sequences/steps/{first}/test").status_code == 302
    [test] = mailbox.wait_for(1)
    assert test["Subject"] == "[Test] Hello again" and test["To"] == "editor@example.com"

    # Readers and the report.
    add_subscribers(app, 2)
    with app.app_context(), unit_of_work():
        db.session.execute(update(Subscriber).values(confirmed_at=utcnow()))
    with app.app_context(), unit_of_work():
        runner.run(sequence_id)
    shown = editor.get(page).get_data(True)
    assert "reader0@example.com" in shown and "waiting: 0 step(s) passed" in shown
    assert "<td>2</td>" in shown  # two readers waiting for the first step
    assert {row.action for row in audit_rows(app)} >= {
        "sequence_create", "sequence_step_add", "sequence_step_move", "sequence_step_edit",
        "send_test"}


@pytest.mark.parametrize(("after", "subject", "body", "says"), [
    ("soon", "Hi", "Body", "not a number and a unit"),
    ("-1h", "Hi", "Body", "negative"),
    ("1h", "Hi\nthere", "Body", "control character"),
    ("1h", "Hi", "", "empty"),
    ("1h", "Hi", "a" * (200 * 1024 + 1), "KB is allowed"),
])
def test_bad_step_input_is_a_400_and_nothing_stored(app, editor, after, subject, body, says):
    post(editor, "/admin/sequences/", name="welcome")
    with app.app_context():
        sequence_id = db.session.scalar(select(Sequence.id))
    response = post(editor, f"/admin/sequences/{sequence_id}/steps", after=after,
                    subject=subject, body=body)
    assert response.status_code == 400
    assert says in response.get_data(True)
    assert stored_steps(app) == []


def test_bad_sequence_input_is_a_400(app, editor):
    assert post(editor, "/admin/sequences/", name="x", topic="nope").status_code == 400
    assert post(editor, "/admin/sequences/", name="").status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Sequence)) == 0
    assert editor.get("/admin/sequences/999").status_code == 404
    assert editor.get("/admin/sequences/steps/999/preview").status_code == 404


@pytest.mark.parametrize("action", ["pause", "cancel", "discard"])
def test_a_steps_sending_cannot_be_paused_or_cancelled_by_posting_its_id(app, editor, action):
    post(editor, "/admin/sequences/", name="welcome")
    with app.app_context():
        sequence_id = db.session.scalar(select(Sequence.id))
    post(editor, f"/admin/sequences/{sequence_id}/steps", after="0s", subject="Hi", body="Hello")
    with app.app_context():
        digest_id = db.session.scalar(select(SequenceStep.digest_id))

    response = post(editor, f"/admin/digests/{digest_id}/{action}")

    assert response.status_code == 409
    assert "sequence step" in response.get_data(True)
    with app.app_context():
        assert db.session.get(Digest, digest_id).status == DigestStatus.SENDING
    assert [(row.action, row.outcome) for row in audit_rows(app)][-1] == (action, "failed")


def test_an_editor_gives_a_step_french_words_and_previews_them(app, editor):
    app.config["LANGUAGES"] = ("en", "fr")
    post(editor, "/admin/sequences/", name="welcome")
    with app.app_context():
        sequence_id = db.session.scalar(select(Sequence.id))
    page = f"/admin/sequences/{sequence_id}"
    assert "Subject in français" in editor.get(page).get_data(True)
    assert post(editor, f"{page}/steps", after="0s", subject="Hello", body="Some *words*",
                subject_fr="Bonjour", body_fr="Des *mots*").status_code == 302
    with app.app_context():
        step_id = db.session.scalar(select(SequenceStep.id))
    edit_page = editor.get(f"/admin/sequences/steps/{step_id}").get_data(True)
    assert 'value="Bonjour"' in edit_page and "Des *mots*" in edit_page
    french = editor.get(f"/admin/sequences/steps/{step_id}/preview?lang=fr&part=text")
    assert french.get_data(True).startswith("Subject: Bonjour")
    assert "Se désabonner :" in french.get_data(True)
    english = editor.get(f"/admin/sequences/steps/{step_id}/preview?part=text")
    assert english.get_data(True).startswith("Subject: Hello")
    # An unknown ?lang= is the default language, never an error.
    assert editor.get(f"/admin/sequences/steps/{step_id}/preview?lang=xx&part=text"
                      ).get_data(True).startswith("Subject: Hello")
    # Emptying the French words falls back to the default's.
    assert post(editor, f"/admin/sequences/steps/{step_id}", after="0s", subject="Hello",
                body="Some *words*", subject_fr="", body_fr="").status_code == 302
    with app.app_context():
        assert db.session.get(SequenceStep, step_id).translations is None


def test_quiet_hours_are_set_on_the_sequence_page_and_bad_ones_are_a_400(app, editor):
    post(editor, "/admin/sequences/", name="welcome")
    with app.app_context():
        sequence_id = db.session.scalar(select(Sequence.id))
    window = f"/admin/sequences/{sequence_id}/window"
    for bad, says in (("20:00-08:00", "before it starts"), ("8am-8pm", "HH:MM"),
                      ("soon", "two times of day")):
        response = post(editor, window, window=bad)
        assert response.status_code == 400 and says in response.get_data(True)
        with app.app_context():
            assert db.session.scalar(select(Sequence.window_start)) is None
    assert post(editor, window, window="08:00-20:00").status_code == 302
    assert 'value="08:00-20:00"' in editor.get(f"/admin/sequences/{sequence_id}").get_data(True)
    with app.app_context():
        assert db.session.execute(select(Sequence.window_start, Sequence.window_end)).one() == (
            480, 1200)
    assert post(editor, window, window="").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Sequence.window_start)) is None
    assert "sequence_window" in {row.action for row in audit_rows(app)}
