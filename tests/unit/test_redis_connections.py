"""Redis under Sentinel: the settings, refused at start when they cannot work, and what
Celery and the rate limiter are told."""

from __future__ import annotations

import pytest

from newsletter.config import ConfigError, load_settings
from newsletter.redis_connections import celery_broker, limiter_storage

SENTINELS = {"NEWSLETTER_REDIS_SENTINELS": "10.0.0.5:26379, sentinel-b:26380,[::1]:26381",
             "NEWSLETTER_REDIS_SENTINEL_MASTER": "newsletter",
             "NEWSLETTER_REDIS_URL": "redis://:p%40ss@ignored:6379/4"}


def test_sentinels_are_parsed():
    config = load_settings(SENTINELS)
    assert config["REDIS_SENTINELS"] == (("10.0.0.5", 26379), ("sentinel-b", 26380),
                                         ("::1", 26381))


@pytest.mark.parametrize("value", ["10.0.0.5", "10.0.0.5:", "10.0.0.5:port", ":26379",
                                   "a:70000", "a b:26379", "redis://a:26379", "a:26379;b:1"])
def test_bad_sentinel_addresses_are_refused_in_one_line(value):
    with pytest.raises(ConfigError) as error:
        load_settings({**SENTINELS, "NEWSLETTER_REDIS_SENTINELS": value})
    [line] = [line for line in str(error.value).splitlines() if "SENTINELS" in line]
    assert line.strip().startswith("NEWSLETTER_REDIS_SENTINELS: expected host:port")


def test_sentinels_without_a_master_name_are_refused():
    with pytest.raises(ConfigError, match="NEWSLETTER_REDIS_SENTINEL_MASTER: name the master"):
        load_settings({"NEWSLETTER_REDIS_SENTINELS": "a:26379"})


def test_celery_and_the_limiter_follow_the_sentinels():
    config = load_settings({**SENTINELS, "NEWSLETTER_REDIS_SENTINEL_PASSWORD": "s3cret"})
    url, options = celery_broker(config)
    assert url == ("sentinel://:p%40ss@10.0.0.5:26379/4;sentinel://:p%40ss@sentinel-b:26380/4;"
                   "sentinel://:p%40ss@[::1]:26381/4")
    assert options == {"master_name": "newsletter", "sentinel_kwargs": {"password": "s3cret"}}
    uri, storage = limiter_storage(config, connect_timeout=1, timeout=1)
    assert uri == "redis+sentinel://10.0.0.5:26379,sentinel-b:26380,[::1]:26381/newsletter"
    assert storage["db"] == 4 and storage["password"] == "p@ss"
    assert storage["sentinel_kwargs"]["password"] == "s3cret"
    assert storage["use_replicas"] is False


def test_without_sentinels_everything_uses_the_url():
    config = load_settings({"NEWSLETTER_REDIS_URL": "redis://cache:6379/2"})
    assert celery_broker(config) == ("redis://cache:6379/2", {})
    assert limiter_storage(config, connect_timeout=1, timeout=2)[0] == "redis://cache:6379/2"
