"""The editor workspace at /admin: thin views over the services, one module per area.

One blueprint, ``bp`` (endpoints ``admin.*``), with one access rule; both live in
``access.py`` with the audit helpers. Where a page lives:

- ``accounts``: login (and its second factor), logout, the account page, invitations,
  the editors page (owners)
- ``dashboard``: the dashboard
- ``compose``: the digests page: preview, test mail, send now, schedule
- ``issues``: one issue's report, editing it while scheduled, its progress and controls
- ``articles``: the articles, writing and editing one
- ``topics``: the topics
- ``segments``: saved reader segments, built with a live count
- ``sequences``: sequences, their steps (add, edit, reorder, preview, test), readers
- ``subscribers``: readers, one reader's page, import, export and erasure
- ``bounces``: reports not understood, reactivating a reader, resuming a guarded send
- ``tokens``: API tokens (owners)
- ``webhooks``: webhook endpoints, each one's delivery log and resending (owners)
- ``audit``: the audit log (owners)
- ``settings``: the site settings and mail texts (owners)

Importing an area registers its views on ``bp``, so the areas are imported here.
"""

from newsletter.web.admin import (  # noqa: F401  (each registers its views on bp)
    accounts,
    articles,
    audit,
    bounces,
    compose,
    dashboard,
    issues,
    segments,
    sequences,
    settings,
    subscribers,
    tokens,
    topics,
    webhooks,
)
from newsletter.web.admin.access import bp

__all__ = ["bp"]
