"""Links in mails: a send's unsubscribe URLs are the ones the route builds."""

from __future__ import annotations

import random

import pytest

from newsletter.mail.links import UnsubscribeUrls, url_adapter
from newsletter.models import new_unsubscribe_key


@pytest.mark.parametrize("base_url", ["https://news.example.com", "https://example.org/letters/",
                                      "http://127.0.0.1:5000/a b/"])
def test_each_readers_unsubscribe_url_is_what_the_route_builds(app, base_url, monkeypatch):
    monkeypatch.setitem(app.config, "BASE_URL", base_url)
    rnd = random.Random(3)
    keys = [new_unsubscribe_key() for _ in range(50)] + [
        "".join(rnd.choice("aZ09-_/%?#é .~") for _ in range(rnd.randint(1, 30)))
        for _ in range(200)]
    with app.app_context():
        adapter = url_adapter()
        urls = UnsubscribeUrls(adapter)
        assert urls.pieces is not None  # the quick path is there to be checked
        for key in keys:
            assert urls(key) == adapter.build("public.unsubscribe", {"token": key},
                                              force_external=True), key
