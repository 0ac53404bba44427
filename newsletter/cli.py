"""``flask --app newsletter ...`` commands: thin wrappers over the domain packages."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from newsletter.analytics import reports as click_reports
from newsletter.config import ENV_PREFIX
from newsletter.content import article_files, articles, feeds, site_logo, site_settings, topics
from newsletter.db import commit_each, unit_of_work
from newsletter.delivery import outbox
from newsletter.editors import accounts, audit, two_factor
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.issues.schedule import local_time, parse_schedule
from newsletter.keys import generate_keys
from newsletter.mail.addresses import InvalidAddress
from newsletter.models import ArticleSource, Digest, DigestStatus, ImportStatus
from newsletter.readers import segments, subscriber_lists, subscriptions


def register(app: Flask) -> None:
    from newsletter.bounce_cli import bounces_cli
    from newsletter.segment_cli import segments_cli
    from newsletter.sequence_cli import sequences_cli
    from newsletter.webhook_cli import webhooks_cli

    for group in (articles_cli, digest_cli, subscribers_cli, editors_cli, bounces_cli,
                  topics_cli, settings_cli, sequences_cli, webhooks_cli,
                  stats_cli, segments_cli):
        app.cli.add_command(group)

    @app.cli.command("send-owed-mails")
    def send_owed_mails():
        """Enqueue unprocessed subscribe requests and owed confirmation and welcome mails
        (what the beat does each minute)."""
        with unit_of_work():
            subscriptions.forget_old_limits()
        click.echo(f"enqueued {subscriptions.enqueue_unprocessed()} subscribe request(s)")
        click.echo(f"enqueued {outbox.enqueue_owed()} owed mail(s)")


# A plugin command (pyproject's flask.commands entry point), so it runs without loading
# the app, which refuses to start while a key is missing.
@click.group("keys", help="The keys the data depends on.")
def keys_cli():
    pass


@keys_cli.command("generate")
def generate_keys_command():
    """Print fresh random values for every key, as an environment file's lines."""
    for name, value in generate_keys().items():
        click.echo(f"{ENV_PREFIX}{name}={value}")


articles_cli = AppGroup("articles", help="Articles that digests carry.")


@articles_cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False,
                                                                  path_type=Path))
@click.option("--url-prefix", help="URL prefix for files that name no URL "
                                   "[default: BASE_URL/articles].")
def import_articles(paths: tuple[Path, ...], url_prefix: str | None):
    """Import .txt (scraped page), .html and .md (front matter) files."""
    prefix = url_prefix or current_app.config["BASE_URL"] + "/articles"
    failed = 0
    for path in paths:
        try:
            with unit_of_work():  # one transaction per file: a bad file keeps the others
                data = article_files.read_article_file(path, prefix)
                article, created = articles.add_article(data, ArticleSource.IMPORT)
        except articles.InvalidArticle as error:
            failed += 1
            click.echo(f"{path}: skipped: {error}", err=True)
            continue
        state = "imported" if created else "already known"
        click.echo(f"{path}: {state}: {article.title} <{article.url}>")
    if failed:
        sys.exit(1)


@articles_cli.command("poll-feeds")
def poll_feeds():
    """Fetch NEWSLETTER_FEEDS now."""
    for url in current_app.config["FEEDS"]:
        poll = feeds.start_poll(url)
        for entry in poll.entries:  # one transaction per article, as the poll_feed task
            with unit_of_work():
                poll.add(entry)
        with unit_of_work():
            result = poll.finish()
        state = result.error or ("not modified" if result.not_modified else "ok")
        click.echo(f"{result.url}: {state}, {result.added} new, {result.skipped} skipped")


digest_cli = AppGroup("digest", help="Compose, preview and send digests.")


@digest_cli.command("send")
@click.option("--subject", help="Subject line [default: from the first article].")
@click.option("--intro", default="", help="A paragraph above the articles.")
@click.option("--headline", default="",
              help="The mail's big title [default: the site name and today's date].")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; change nothing.")
@click.option("--wait/--no-wait", default=True, help="Show progress until every row is final.")
@click.option("--segment", "segment_name", metavar="NAME",
              help="Only the readers of this segment (see `segments list`).")
@click.option("--segment-only", is_flag=True,
              help="With --segment: keep the issue out of the public archive.")
def send_digest(subject: str | None, intro: str, headline: str, dry_run: bool, wait: bool,
                segment_name: str | None, segment_only: bool):
    """Compose an issue of everything new and send it now."""
    try:
        with unit_of_work():
            segment = segments.find(segment_name) if segment_name is not None else None
            if dry_run:
                new = digests.new_articles()
                click.echo(f"subject: {subject or (digests.default_subject(new) if new else '-')}")
                for article in new:
                    click.echo(f"  {article.published_at:%Y-%m-%d}  {article.title}")
                click.echo(f"{len(new)} new article(s), "
                           f"{digests.active_subscriber_count(segment)} recipient(s)")
                return
            digest = digests.send_now(subject=subject, intro=intro, headline=headline,
                                      segment=segment, segment_only=segment_only)
    except segments.SegmentError as error:
        raise click.ClickException(str(error)) from None
    if digest is None:
        click.echo("Nothing new since the last issue: nothing sent.")
        return
    to = f" of segment {segment.name!r}" if segment is not None else ""
    click.echo(f"issue {digest.id}: {digest.subject!r} to {digest.recipients} subscriber(s){to}")
    if wait:
        _follow(digest.id, digest.recipients)


def _follow(digest_id: int, total: int) -> None:
    """A progress bar that says, beside it, what the rest waits for (deferred rows and
    their next retry, a pause and its reason, messages in flight)."""
    with click.progressbar(length=total, label="sending", show_pos=True,
                           item_show_func=lambda waiting: waiting) as bar:
        done = 0
        while True:
            db.session.expire_all()
            started = time.monotonic()
            counts = digests.progress(digest_id)
            # The counts read every row of the issue: wait ten times as long as they
            # took, so following a million-reader send costs the database a tenth.
            pause = max(0.5, 10 * (time.monotonic() - started))
            final = counts["total"] - counts["remaining"]
            bar.update(final - done, current_item=digests.waiting_for(digest_id, counts))
            bar.render_progress()  # the words change even when no row became final
            done = final
            if db.session.get(Digest, digest_id).status in (DigestStatus.SENT,
                                                            DigestStatus.CANCELLED):
                break
            time.sleep(pause)
    counts = digests.progress(digest_id)
    click.echo(", ".join(f"{key} {counts[key]}" for key in
                         ("sent", "failed", "unknown", "skipped")))


@digest_cli.command("list")
def list_digests():
    """Issues not finished yet: drafts, scheduled, sending, paused (with their ids)."""
    shown = 0
    zone = parse_schedule(current_app.config["DIGEST_SCHEDULE"]).timezone
    for digest in digests.unfinished():
        shown += 1
        when = f" at {local_time(digest.send_at, zone)}" if digest.send_at else ""
        click.echo(f"{digest.id:>6}  {digest.status.value:<9}  {len(digest.articles)} article(s)"
                   f"{when}  {digest.subject}")
    if not shown:
        click.echo("No unfinished issue.")


@digest_cli.command("start")
@click.argument("digest_id", type=int)
@click.option("--wait/--no-wait", default=True, help="Show progress until every row is final.")
def start_digest(digest_id: int, wait: bool):
    """Send a draft or scheduled issue now (see `digest list`)."""
    with unit_of_work():
        recipients = digests.start_draft(digest_id)
    if recipients is None:
        raise click.ClickException(f"issue {digest_id} is not a draft or scheduled issue")
    click.echo(f"issue {digest_id} started: {recipients} subscriber(s)")
    if wait:
        _follow(digest_id, recipients)


@digest_cli.command("discard")
@click.argument("digest_id", type=int)
def discard_digest(digest_id: int):
    """Throw away a draft or scheduled issue; its articles go into the next one."""
    with unit_of_work():
        discarded = digests.discard(digest_id)
    if not discarded:
        raise click.ClickException(f"issue {digest_id} is not a draft or scheduled issue")
    click.echo(f"issue {digest_id} discarded")


@digest_cli.command("cancel")
@click.argument("digest_id", type=int)
def cancel_digest(digest_id: int):
    """Stop a send for good: whoever was not sent to yet is skipped."""
    with unit_of_work():
        cancelled = digests.cancel(digest_id)
    if not cancelled:
        raise click.ClickException(f"issue {digest_id} cannot be cancelled in its state")
    click.echo(f"issue {digest_id} cancelled; its articles are free for a new issue")


@digest_cli.command("sweep")
def sweep_digests():
    """Take back the rows of workers that are gone and re-publish stalled sends now
    (beat does it every 15 s)."""
    released = published = 0
    for digest_id, status in digests.sweep_candidates():
        with unit_of_work():  # each issue's tasks are published as its transaction commits
            swept = digests.sweep_issue(digest_id, status)
        if swept.released or swept.published:
            click.echo(f"digest {digest_id}: took back {swept.released} row(s) from lost "
                       f"workers, published {swept.published} batch task(s)")
        released += swept.released
        published += swept.published
    click.echo(f"took back {released} row(s), published {published} batch task(s)")


@digest_cli.command("preview")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for digest.html and digest.txt [default: INSTANCE/preview].")
def preview_digest(out: Path | None):
    """Write the next issue's HTML and text to files, changing nothing."""
    out = out or Path(current_app.instance_path) / "preview"
    rendered = digests.preview()
    if rendered is None:
        click.echo("Nothing new since the last issue.")
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "digest.html").write_text(rendered.html)
    (out / "digest.txt").write_text(f"Subject: {rendered.subject}\n\n{rendered.text}")
    click.echo(f"wrote {out / 'digest.html'} and {out / 'digest.txt'}")


subscribers_cli = AppGroup("subscribers", help="Import and export the list.")


@subscribers_cli.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--consent", help="Record the addresses as confirmed, with this text as their "
                                "consent source. Without it, each gets a confirmation mail.")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
@click.option("--wait/--no-wait", default=True, help="Follow the job until it ends.")
@click.option("--here", is_flag=True, help="Run the job in this process instead of a worker.")
def import_subscribers(file, consent: str | None, dry_run: bool, wait: bool, here: bool):
    """Import a CSV with an 'email' column and an optional 'name' column, as a job."""
    head = file.read(subscriber_lists.SNIFF_BYTES)
    try:
        subscriber_lists.check_header(head)
    except subscriber_lists.ListFileError as error:
        raise click.ClickException(str(error)) from None
    upload = subscriber_lists.keep_upload(io.BytesIO(head))
    with open(subscriber_lists.upload_path(upload), "ab") as kept:
        shutil.copyfileobj(file, kept, 1024 * 1024)
    with unit_of_work():
        job = subscriber_lists.start_import_job(upload, consent, dry_run, editor_id=None)
        audit.record(audit.CLI, "import_check" if dry_run else "import",
                     target=f"import job {job.id}",
                     detail=f"consent: {consent}" if consent else "with confirmation mails")
    if here:
        commit_each(subscriber_lists.import_job_steps(job.id))
    elif not wait:
        click.echo(f"import job {job.id} queued")
        return
    job = _follow_import(job.id)
    if job.status == ImportStatus.FAILED:
        raise click.ClickException(job.error or "the import failed")
    for line, value, reason in subscriber_lists.sample_lines(job.invalid_sample)[:50]:
        click.echo(f"line {line}: {value!r}: {reason}", err=True)
    for line, value, reason in (job.topic_note_sample or [])[:50]:
        click.echo(f"line {line}: {value!r}: {reason}", err=True)
    verb = "would add" if dry_run else "added"
    click.echo(f"{verb} {job.valid}, duplicates {job.duplicates}, "
               f"invalid {job.invalid_count}")


def _follow_import(job_id: int):
    job = subscriber_lists.import_job(job_id)
    with click.progressbar(length=max(job.total_bytes, 1), label="importing",
                           file=sys.stderr) as bar:
        done = 0
        while job.status in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            time.sleep(0.5)
            job = subscriber_lists.import_job(job_id)
            bar.update(job.bytes_done - done)
            done = job.bytes_done
        bar.update(max(job.total_bytes, 1) - done)
    return job


@subscribers_cli.command("export")
@click.argument("file", type=click.File("w"), default="-")
def export_subscribers(file):
    """Write the list as CSV (to standard output by default)."""
    with unit_of_work():
        audit.record(audit.CLI, "export", target="subscribers.csv")
    csv.writer(file).writerows(subscriber_lists.export_rows())


topics_cli = AppGroup("topics", help="Topics readers choose; articles land in them by "
                                     "category, by feed or by hand.")


def _comma_list(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


@topics_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="What readers see, e.g. 'Asia-Pacific'.")
@click.option("--description", default="", help="One line shown next to the name.")
@click.option("--categories", help='Article categories that land in it, e.g. "Asia,Pacific".')
@click.option("--feeds", help="Feed URLs whose every article lands in it, comma-separated.")
def create_topic(slug: str, name: str, description: str, categories: str | None,
                 feeds: str | None):
    """Add a topic (SLUG: lowercase letters, digits and hyphens)."""
    try:
        with unit_of_work():
            topic = topics.create_topic(slug, name, description=description,
                                        categories=_comma_list(categories) or [],
                                        feeds=_comma_list(feeds) or [])
            audit.record(audit.CLI, "topic_create", target=f"topic {topic.slug}")
    except topics.TopicError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"topic {topic.slug}: {topic.name}")


@topics_cli.command("update")
@click.argument("slug")
@click.option("--name", help="A new name.")
@click.option("--description", help="A new description.")
@click.option("--categories", help="The categories that land in it (replaces the old ones).")
@click.option("--feeds", help="The feed URLs that land in it (replaces the old ones).")
@click.option("--position", type=int, help="Its place in the order (lower first).")
def update_topic(slug: str, name: str | None, description: str | None,
                 categories: str | None, feeds: str | None, position: int | None):
    """Change a topic; a change of categories or feeds refiles the articles."""
    topic = topics.get_topic(slug)
    if topic is None:
        raise click.ClickException(f"Unknown topic: {slug[:64]}")
    try:
        with unit_of_work():
            topics.update_topic(topic.id, name=name, description=description,
                                position=position, categories=_comma_list(categories),
                                feeds=_comma_list(feeds))
            audit.record(audit.CLI, "topic_update", target=f"topic {topic.slug}")
    except topics.TopicError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"topic {topic.slug} updated")


@topics_cli.command("list")
def list_topics():
    """One line per topic, tab-separated: slug, name, readers, categories, feeds."""
    readers = topics.reader_counts()
    for topic in topics.list_topics():
        click.echo("\t".join([topic.slug, topic.name, str(readers.get(topic.id, 0)),
                              ",".join(topic.categories), ",".join(topic.feeds)]))


@topics_cli.command("from-categories")
def topics_from_categories():
    """Make a topic of every article category no topic maps yet."""
    with unit_of_work():
        created = topics.topics_from_categories()
        if created:
            audit.record(audit.CLI, "topic_create",
                         target=", ".join(topic.slug for topic in created)[:200])
    for topic in created:
        click.echo(f"topic {topic.slug}: {topic.name}")
    click.echo(f"created {len(created)} topic(s)")


editors_cli = AppGroup("editors", help="Editors and their API tokens.")


@editors_cli.command("create")
@click.argument("email")
@click.option("--password", default=None,
              help="Prompted for (twice) on a terminal; one line of standard input when piped.")
@click.option("--role", type=click.Choice(["owner", "editor", "author"]), default=None,
              help="What the editor may do [default: editor; the first editor is an owner].")
def create_editor(email: str, password: str | None, role: str | None):
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:  # `echo "$PASSWORD" | flask editors create ...`: one line, no confirmation
            password = sys.stdin.readline().rstrip("\r\n")
    try:
        with unit_of_work():
            editor = accounts.create_editor(email, password, role)
            audit.record(audit.CLI, "editor_create", target=editor.email,
                         detail=editor.role.value)
    except (accounts.EditorError, InvalidAddress) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"editor {editor.email} created ({editor.role.value})")


@editors_cli.command("token")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(list(accounts.SCOPES)),
              help="What the token may do; repeat for several [default: articles:write].")
@click.option("--expires", "expires_days", type=click.IntRange(1, 3650), default=None,
              help="Days until the token stops working [default: never].")
def create_token(email: str, name: str, scopes: tuple[str, ...], expires_days: int | None):
    """Print a new API token for EMAIL (shown once, alone on the last line)."""
    try:
        with unit_of_work():
            token, row = accounts.create_api_token(email, name, scopes or ("articles:write",),
                                                  expires_days)
            audit.record(audit.CLI, "token_create",
                         target=f"token {row.id} of {row.editor.email}", detail=row.scopes)
    except accounts.EditorError as error:
        raise click.ClickException(str(error)) from None
    expiry = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "no expiry"
    click.echo(f"token {row.id} for {row.editor.email}: {row.scopes}; {expiry}")
    click.echo(token)


@editors_cli.command("reseal-totp")
def reseal_totp():
    """Re-encrypt every editor's TOTP secret with the current NEWSLETTER_TOTP_KEY (run
    after a rotation, before the old key leaves NEWSLETTER_TOTP_KEY_FALLBACKS)."""
    with unit_of_work():
        done, unreadable = two_factor.reseal_all()
        audit.record(audit.CLI, "totp_reseal", detail=f"{done} resealed, {unreadable} unreadable")
    click.echo(f"{done} TOTP secret(s) re-encrypted with the current key")
    if unreadable:
        raise click.ClickException(
            f"{unreadable} secret(s) open with no configured key: keep the old key in "
            "NEWSLETTER_TOTP_KEY_FALLBACKS, or those editors log in with a recovery code")


@editors_cli.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(["owner", "editor", "author"]))
def change_role(email: str, role: str):
    """Give EMAIL another role."""
    editor = accounts.find_editor(email)
    try:
        if editor is None:
            raise accounts.EditorError(f"No editor {email}.")
        with unit_of_work():
            accounts.change_role(editor.id, role)
            audit.record(audit.CLI, "role_change", target=editor.email, detail=role)
    except accounts.EditorError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{editor.email} is now {role}")


settings_cli = AppGroup("settings", help="What a newsroom sets once: site name, postal "
                        "address, sender, logo, colours, texts.")


def _refuse(message: str) -> None:
    """A bad value: one line on stderr, exit code 2, nothing stored."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


@settings_cli.command("show")
def show_settings():
    """Every setting: what mails and pages use now, and where it comes from."""
    saved = site_settings.stored()
    used = site_settings.current()
    for key in site_settings.KEYS:
        origin = "" if saved[key] else "  (default)"
        value = getattr(used, key).replace("\n", "\\n")
        click.echo(f"{key} = {value}{origin}")
    click.echo(f"logo upload = {used.uploaded_logo_url or '(none)'}")


@settings_cli.command("set")
@click.argument("key")
@click.argument("value")
def set_setting(key: str, value: str):
    """Set KEY (site_name, postal_address, sender_name, reply_to, logo_url, accent_color,
    description, confirm_text, welcome_text) to VALUE; an empty VALUE restores the
    default."""
    try:
        with unit_of_work():
            stored = site_settings.set_one(key, value)
            audit.record(audit.CLI, "settings", target="site settings",
                         detail=site_settings.ALIASES.get(key, key))
    except site_settings.InvalidSetting as error:
        _refuse(str(error))
    click.echo(f"{site_settings.ALIASES.get(key, key)} = {stored}")


@settings_cli.command("logo")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--remove", is_flag=True, help="Forget the uploaded logo.")
def set_logo(path: Path | None, remove: bool):
    """Upload PATH (PNG, JPEG, GIF or WebP, at most 512 KB) as the logo, or --remove it."""
    if remove == (path is not None):
        _refuse("give either a file or --remove")
    if remove:
        with unit_of_work():
            site_logo.remove()
            audit.record(audit.CLI, "settings", target="site settings", detail="logo removed")
        click.echo("logo removed")
        return
    try:
        with path.open("rb") as file:
            data = file.read(site_logo.MAX_BYTES + 1)
    except OSError as error:
        _refuse(f"logo: cannot read {path}: {error.strerror}")
    try:
        with unit_of_work():
            content_type = site_logo.save(data)
            audit.record(audit.CLI, "settings", target="site settings", detail="logo uploaded")
    except site_logo.InvalidLogo as error:
        _refuse(f"logo: {error}")
    click.echo(f"logo stored ({content_type}, {len(data)} bytes)")


stats_cli = AppGroup("stats", help="What readers did with an issue.")


@stats_cli.command("issue")
@click.argument("digest_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def issue_stats(digest_id: int, as_json: bool):
    """Deliveries, human and bot clicks per link, and opens (when tracked) of an issue."""
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        raise click.ClickException(f"no issue {digest_id}")
    report = click_reports.issue_report(digest)
    if as_json:
        click.echo(json.dumps(report.as_json()))
        return
    click.echo(f"{digest.subject}: {report.delivered} of {report.recipients} delivered")
    click.echo(f"clicks: {report.human} human, {report.bot} bot; "
               f"{report.unique_human_copies} copies clicked by a person "
               f"({report.click_rate:.1%})")
    for line in report.links:
        click.echo(f"  {line.human:6d} human {line.bot:6d} bot  {line.url}")
    if report.opens is not None:
        click.echo(f"opens (machine opens excluded): {report.opens['human']}; "
                   f"proxy prefetches {report.opens['proxy']}, bots {report.opens['bot']}")
