"""Blueprints: public reader pages, the JSON API, dev-only pages; and error pages."""

from flask import Flask

from newsletter.mail.language import language_name


def register_blueprints(app: Flask) -> None:
    from newsletter.web import (
        admin,
        analytics,
        api,
        common,
        errors,
        health,
        metrics,
        preferences,
        public,
        request_ids,
        topic_archive,
        webhooks,
    )

    request_ids.init_app(app)  # first: every later hook's log lines carry the id
    app.add_template_filter(common.local_time)
    app.add_template_filter(common.plural)
    app.add_template_global(common.current_language)
    app.add_template_global(language_name)

    app.register_blueprint(public.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(topic_archive.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)  # the whole editor workspace, /admin
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(analytics.bp)  # /r/... tracked links, /o/... the open pixel
    app.wsgi_app = analytics.FastRedirect(app, app.wsgi_app)  # a known issue's clicks
    app.register_blueprint(health.bp)  # /healthz: probes, no login, no rate limit
    app.register_blueprint(metrics.bp)  # /metrics, for a token with metrics:read
    errors.register(app)
    if app.config["DEV_MAILBOX"]:
        from newsletter.web import devmail

        app.register_blueprint(devmail.bp)
