"""Accessibility (axe-core, WCAG 2.1 A and AA) of what readers and editors see beyond
the pages test_page_widths.py walks: every mail the app sends, and the workspace's
navigation menu opened on a phone. No critical or serious violation at 375 or 1280 px.

Every template under templates/email/ must have a renderer here: a new mail fails
this test until it is covered."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.delivery import outbox
from newsletter.editors import editor_mail
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import (
    AddressChange,
    Editor,
    EditorMailKind,
    MailTemplate,
    SequenceStep,
    Subscriber,
    utcnow,
)
from newsletter.sequences import steps
from tests.factories import add_article, make_editor
from tests.helpers import ROOT, axe_problems, log_in, screenshot

WIDTHS = (375, 1280)


def reader_mail(template: MailTemplate):
    def render() -> str:
        reader = Subscriber(id=1, email="reader@example.com", name="Reader",
                            unsubscribe_key="k" * 32, token_nonce="n" * 16,
                            pending_email="new@example.com")
        change = AddressChange(subscriber_id=1, old_email="old@example.com",
                               new_email="reader@example.com", changed_at=utcnow(),
                               undo_key="u" * 32)
        return outbox.render(template, reader, change).html
    return render


def editor_mail_of(kind: EditorMailKind):
    def render() -> str:
        return editor_mail.render(kind, db.session.scalar(select(Editor))).html
    return render


def digest_mail() -> str:
    return digests.preview().html


def sequence_step_mail() -> str:
    markdown = "## Day two\n\nWhat we cover, and [where to start](https://news.example.com/)."
    step = SequenceStep(subject="Welcome, day two", body_markdown=markdown,
                        body_html=steps.body_html_of(markdown))
    return steps.preview(step).html


RENDERERS = {
    **{template.value: reader_mail(template) for template in MailTemplate},
    **{f"editor_{kind.value}": editor_mail_of(kind) for kind in EditorMailKind},
    "digest": digest_mail,
    "sequence_step": sequence_step_mail,
}


def test_every_mail_template_is_covered():
    on_disk = {path.parent.name for path in (ROOT / "templates" / "email").glob("*/body.html")
               if not path.parent.name.startswith("_")}
    assert on_disk == set(RENDERERS)


def test_no_mail_has_a_serious_accessibility_problem(app, clean_state, browser):
    make_editor(app)
    add_article(app)
    with app.app_context():
        mails = {name: render() for name, render in sorted(RENDERERS.items())}
    problems = []
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        for name, html in mails.items():
            page.set_content(html)
            problems += axe_problems(page, f"mail {name} at {width} px")
        context.close()
    assert problems == [], "\n".join(problems)


def test_the_open_menu_on_a_phone(app, live_server, page):
    make_editor(app)
    log_in(page, live_server, "/admin/")
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.set_viewport_size({"width": 375, "height": 800})
    page.get_by_text("Menu", exact=True).click()
    page.get_by_role("navigation", name="Workspace menu").get_by_role(
        "link", name="Settings").wait_for()
    screenshot(page, "admin-menu-open-375")
    assert axe_problems(page, "the open menu at 375 px") == []
