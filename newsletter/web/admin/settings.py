"""Site settings in the workspace (owners): the site's name, address and sender,
branding (an uploaded logo too), and the texts of the confirmation and welcome mails
with a preview of each mail."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from newsletter.content import site_logo, site_settings
from newsletter.delivery import outbox
from newsletter.models import MailTemplate, Role, Subscriber
from newsletter.web.admin.access import allow, audit_action, bp
from newsletter.web.security import mail_document

PREFIX = "/settings"  # under the workspace's /admin

PREVIEW_READER = {"id": 0, "email": "reader@example.com", "unsubscribe_key": "preview",
                  "token_nonce": "preview"}


def _page(values: dict[str, str], errors: dict[str, str], **extra) -> str:
    used = site_settings.current()
    return render_template("admin/settings.html", values=values, errors=errors,
                           defaults={key: getattr(used, key) for key in site_settings.KEYS},
                           logo=used.uploaded_logo_url, max_logo_kb=site_logo.MAX_BYTES // 1024,
                           labels={**site_settings.LABELS, "logo": "logo"},
                           **extra)


@bp.get(PREFIX + "/")
@allow(Role.OWNER)
def settings_page():
    used = site_settings.current()
    # A setting whose default is the environment's shows empty (the placeholder says
    # what it is), so saving the form does not pin today's default.
    values = {key: getattr(used, key) for key in site_settings.KEYS}
    values.update({key: value for key, value in site_settings.stored().items()
                   if key in site_settings.ENVIRONMENT_DEFAULTS})
    return _page(values, {})


@bp.post(PREFIX + "/logo")
@allow(Role.OWNER)
def settings_logo():
    """Upload or remove the logo; a refused file stores nothing."""
    values = {key: getattr(site_settings.current(), key) for key in site_settings.KEYS}
    if request.form.get("action") == "remove":
        site_logo.remove()
        audit_action("settings", target="site settings", detail="logo removed")  # commits
        flash("Logo removed.", "ok")
        return redirect(url_for("admin.settings_page"))
    upload = request.files.get("logo")
    data = upload.stream.read(site_logo.MAX_BYTES + 1) if upload else b""
    try:
        site_logo.save(data)
    except site_logo.InvalidLogo as error:
        audit_action("settings", outcome="failed", target="site settings", detail="logo")
        return _page(values, {"logo": str(error)}), 400
    audit_action("settings", target="site settings", detail="logo uploaded")  # commits
    flash("Logo stored. New mails and the pages show it now.", "ok")
    return redirect(url_for("admin.settings_page"))


@bp.post(PREFIX + "/")
@allow(Role.OWNER)
def settings_save():
    values = {key: request.form.get(key, "") for key in site_settings.KEYS}
    if request.form.get("action") == "preview":
        # Not saved: the page shows the mails with these values (checked like a save).
        errors = site_settings.errors_in(values)
        return _page(values, errors, previewing=not errors), 400 if errors else 200
    errors = site_settings.save(values)
    if errors:
        audit_action("settings", outcome="failed", target="site settings",
                     detail=", ".join(sorted(errors)))
        return _page(values, errors), 400
    audit_action("settings", target="site settings",  # commits
                 detail=", ".join(site_settings.KEYS))
    flash("Settings saved. Public pages and new mails use them now.", "ok")
    return redirect(url_for("admin.settings_page"))


@bp.get(PREFIX + "/preview/<any(confirm, welcome):template>")
@allow(Role.OWNER)
def settings_preview_mail(template: str):
    """The settings page's sandboxed iframe: a mail for a made-up reader, with the
    saved settings or (unsaved) the ones in the query."""
    if any(key in request.args for key in site_settings.KEYS):
        values = {key: request.args.get(key, "") for key in site_settings.KEYS}
        if site_settings.errors_in(values):
            abort(400, "These settings are not valid; the settings page says why.")
        site_settings.use_for_this_request(values)
    reader = Subscriber(**PREVIEW_READER)  # never added to the session
    return mail_document(outbox.render(MailTemplate(template), reader).html,
                         framed_by_self=True)
