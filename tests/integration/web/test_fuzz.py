"""5,000 malformed requests across every route: no 5xx, no traceback, no ERROR log.

Routes come from the url_map, so a route added later is fuzzed too. Requests are
anonymous (what anyone on the internet can send); the editor area answers them
with its login redirect or a 4xx. The random generator is seeded: a failure
names the request, and re-running replays it.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading

from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus

REQUESTS = 5000
SEED = 7

HUGE_IDS = ["99999999999999999999", "2147483648", "9223372036854775808", "-1", "0",
            "１２", "²", "1e5", "0x10", "1.5", "00000000000000000000001"]
JUNK_SEGMENTS = [
    "%00", "%ff%fe", "%c0%af", "..%2f..%2fetc%2fpasswd", "a" * 3000, "%", "%zz",
    "MTIz.abcdefghijklmnop", "MTIz", "W10.x.y", "eyJhIjoxfQ.aaaa.bbbb", "A" * 22,
    "null", "<script>alert(1)</script>", "'; DROP TABLE subscribers;--", "\u202e\u2028",
    "%E2%80%A8", "%0d%0aSet-Cookie:%20x=1", "~", ".", "..", "_" * 16, "a.b.c.d",
    *HUGE_IDS,
    # Overlong UTF-8 ("/", ".", NUL spelled in 2-4 bytes) and an encoded surrogate.
    "%c0%ae%c0%ae%c0%af", "%e0%80%af", "%f0%80%80%af", "%c0%80", "%ed%a0%80", "%ed%bf%bf",
]
QUERY_STRINGS = [
    "", "embed=1", "embed=%ff", "page=99999999999999999999", "page=²", "page=-5",
    "next=//evil.example", "next=/%5C%5Cevil.example", "next=%09/evil.example",
    "subject=%ff%fe&intro=%00", "q=" + "%41" * 2000, "status=nope", "a=1&a=2&a=3" * 50,
    "%ff=%fe", "=&&=&", "embed=1&embed=0", "subject=" + "x" * 4000,
    "embed=%c0%b1", "page=%e0%80%b1", "q=%f0%80%80%af", "next=%c0%af%c0%afevil.example",
    "q=%ed%a0%80", "%c0%80=%c0%80", "status=%ed%bf%bf",
]
ODD_METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]
JSON_TYPES = ["application/json", "application/json; charset=utf-16",
              "application/json; charset=nope", "application/json;;;===",
              "application/merge-patch+json"]
OTHER_TYPES = [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=", "multipart/form-data; boundary=xyz", "text/csv",
    "application/xml", "\x00\x01", "*/*",
    'multipart/form-data; boundary="', "multipart/form-data; boundary=" + "x" * 5000,
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=nope",
    "application/x-www-form-urlencoded; charset=\xff", "application/x-www-form-urlencoded;;;=",
    "multipart/mixed; boundary=xyz", "application/x-www-form-urlencoded" + "; a=b" * 500,
]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _json_bodies() -> list[bytes]:
    return [
        b"", b"{", b"[]", b"null", b"1e400", b"-", b'"just a string"', b"\xef\xbb\xbf{}",
        _nested(5000).encode(),  # RecursionError in json, unless bounded
        _nested(100).encode(),
        ('{"a":' * 40 + "1" + "}" * 40).encode(),
        ('{"email": "a@example.com", "x": ' + _nested(3000) + "}").encode(),
        json.dumps({"email": ["a@example.com"]}).encode(),
        json.dumps({"email": {"$ne": None}}).encode(),
        json.dumps({"email": 12345, "name": ["x"]}).encode(),
        json.dumps({"email": None}).encode(),
        json.dumps({"email": True}).encode(),
        json.dumps({"email": "a@example.com", "name": {"x": 1}}).encode(),
        json.dumps({"email": "a@example.com", "name": 7}).encode(),
        json.dumps({"email": "x" * 5000 + "@example.com"}).encode(),
        json.dumps({"email": "a\r\nBcc: b@example.com@example.com"}).encode(),
        json.dumps({"title": 1, "url": [], "categories": "x", "published_at": 5}).encode(),
        json.dumps({"subject": ["x"], "intro": 3}).encode(),
        json.dumps([{}] * 3000).encode(),  # 12 KB: under the cap, cheap to parse
        b"[{}," * 10000,  # 40 KB: over the public cap
        b'{"email": "\xff\xfe@example.com"}',
        # UTF-16 JSON. (A valid non-ASCII local part such as é@example.com is left to
        # the transport's own tests: SMTPUTF8 is h5's part of the work.)
        '{"email": "é"}'.encode("utf-16"),
        b'{"email": "a@example.com", "email": "b@example.com"}',
        b'{"email": "\\ud800@example.com"}',  # a lone surrogate
        # Lone surrogates in every kind of string the API reads: they decode to a
        # str that no UTF-8 database driver can encode.
        b'{"email": "a@example.com", "name": "\\udc00"}',
        b'{"email": "a@example.com", "topics": ["\\ud800"], "cadence": "\\udfff"}',
        b'{"\\ud800": "a@example.com"}',
        b'{"title": "\\ud83d", "url": "https://news.example/\\udca9", "summary": "\\udc80",'
        b' "categories": ["\\ud800"], "published_at": "2026-01-01\\udc00"}',
        b'{"subject": "\\ud800", "intro": "\\udbff\\udbff"}',
        b'{"topics": ["\\ud800"], "cadence": "weekly"}',
        b'{"email": "\\ud83d\\ude00@example.com"}',  # a valid pair: an emoji
        b'{"email": "\xed\xa0\x80@example.com"}',  # a surrogate as raw (CESU-8) bytes
        b'{"email": "\xc0\xaf@example.com", "name": "\xe0\x80\xaf"}',  # overlong UTF-8
    ]


def _other_bodies(rng: random.Random) -> list[bytes]:
    return [
        b"",
        b"email=%ff%fe&name=%00&csrf_token=x&website=",
        b"email=a%40example.com&csrf_token=" + b"x" * 300,
        b"email=" + b"a" * 20000,
        b"email=a@example.com&" * 1500,
        b"List-Unsubscribe=One-Click",
        b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click",
        b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n"
        b"email\r\na@example.com\r\n--xyz--\r\n",
        b"--xyz\r\nContent-Disposition: form-data; name=\r\n\r\n",
        b"--xyz\r\n" * 2000,
        b"\xff\xfe\x00\x00garbage",
        b"email=%c0%ae%c0%ae@example.com&name=%ed%a0%80&csrf_token=%f0%80%80%af",
        b"email=\xc0\xafa@example.com&name=\xed\xa0\x80\xe0\x80\xaf",
        b"=" * 3000, b"&" * 10000, b"a=%" + b"%" * 1000,
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
    ]


JUNK_HEADERS = [
    {"Accept": "application/json"},
    {"Accept": "text/html;q=abc, */*;q=-1, ;;;"},
    {"Accept-Language": "\x7f" * 50},
    {"Accept-Encoding": "gzip;q=NaN"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer " + "x" * 5000},
    {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Bearer\tabc def"},
    {"Authorization": "bearer \x00"},
    {"Cookie": "session=.eJw.invalid.sig; session=; ;;; =x"},
    {"Cookie": "session=" + "a" * 4000},
    {"Cookie": "remember_token=1|" + "f" * 128},
    {"X-Forwarded-For": "not-an-ip, 999.999.1.1, ::ffff:zz"},
    {"Origin": "null"},
    {"Origin": "https://evil.example"},
    {"Referer": "\x00\x01"},
    {"If-Modified-Since": "yesterday-ish"},
    {"If-None-Match": '"unterminated'},
    {"Range": "bytes=9999999999999999999-"},
    {"Content-Encoding": "gzip"},
    {"Transfer-Encoding": "chunked"},
    {"User-Agent": "x" * 5000},
    {"Host": "evil.example:99999"},
    {"X-CSRFToken": "x" * 500},
    {"Content-Length": "-1"},
    # Hosts werkzeug's test client can send (IDNA A-labels that do not decode make the
    # client itself fail; tests/integration/web/test_raw_http.py sends them to gunicorn).
    {"Host": "a" * 64 + ".example"}, {"Host": "a" * 300}, {"Host": ".."}, {"Host": "a..b"},
    {"Host": "b\u00fccher.example"}, {"Host": "\u00ff"}, {"Host": "[::1"}, {"Host": "[zz]:80"},
    {"Host": "x:abc"}, {"Host": "-.example"}, {"Host": "a." * 200}, {"Host": ""},
    {"X-Forwarded-Host": "a" * 64}, {"X-Forwarded-For": "\u00ff" * 100},
    {"Content-Length": "abc"}, {"Content-Length": "99999999999999999999999"},
    {"Content-Length": "1e3"}, {"Content-Length": "+5"}, {"Content-Length": " 7 "},
    {"Content-Type": "application/json; charset=\u00ff"},
    {f"X-Junk-{number}": "x" * 20 for number in range(2000)},  # a huge header count
    {"Cookie": "; ".join(f"c{number}=v" for number in range(2000))},
]

PLACEHOLDER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>")


def _path_for(rule, rng: random.Random) -> str:
    """Each converter gets junk (ids: mostly out-of-range numbers), now and then a
    plausible value so the view itself runs."""
    def value(match: re.Match) -> str:
        if rng.random() < 0.2:
            return "1" if match.group(1) == "int" else "x"
        if match.group(1) == "int" and rng.random() < 0.6:
            return rng.choice(HUGE_IDS)
        return rng.choice(JUNK_SEGMENTS)

    return PLACEHOLDER.sub(value, rule.rule)


def _request(rule, rng: random.Random, json_bodies, other_bodies) -> dict:
    allowed = sorted(rule.methods - {"HEAD", "OPTIONS"})
    method = rng.choice(allowed) if rng.random() < 0.75 else rng.choice(ODD_METHODS)
    headers = dict(rng.choice(JUNK_HEADERS)) if rng.random() < 0.5 else {}
    body = b""
    if method not in ("GET", "HEAD", "OPTIONS", "TRACE") or rng.random() < 0.05:
        if rule.rule.startswith("/api/") and rng.random() < 0.8 or rng.random() < 0.2:
            headers["Content-Type"] = rng.choice(JSON_TYPES)
            body = rng.choice(json_bodies)
        else:
            content_type = rng.choice(OTHER_TYPES)
            if content_type is not None:
                headers["Content-Type"] = content_type
            body = rng.choice(other_bodies)
    environ = {}
    path = _path_for(rule, rng)
    if rng.random() < 0.05:  # raw bytes in the path: invalid UTF-8 as a WSGI server passes it
        environ["PATH_INFO"] = (path + "/").encode().decode("latin-1") + "\xff\xfe\xc0"
    return {"method": method, "path": path,
            "query_string": rng.choice(QUERY_STRINGS) if rng.random() < 0.5 else "",
            "headers": headers, "data": body, "environ_overrides": environ}


def test_malformed_requests_never_get_a_5xx(app, client, caplog, mailbox):
    with app.app_context():
        reader = Subscriber(email="kept@example.com", email_normalized="kept@example.com",
                            status=SubscriberStatus.ACTIVE)
        db.session.add(reader)
        db.session.commit()
        reader_id = reader.id
    rules = [rule for rule in app.url_map.iter_rules()]
    assert {"public.subscribe", "public.archive_issue", "api.create_subscription",
            "public.unsubscribe_post", "admin.digest_report"} <= {r.endpoint for r in rules}
    rng = random.Random(SEED)
    json_bodies, other_bodies = _json_bodies(), _other_bodies(rng)
    caplog.set_level(logging.WARNING)
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for number in range(REQUESTS):
        rule = rules[number % len(rules)]  # every route, round-robin
        request = _request(rule, rng, json_bodies, other_bodies)
        try:
            response = client.open(**request)
            status = response.status_code
            response.close()
        except Exception as error:  # TESTING propagates what would be a 500
            status = 599
            failures.append(f"#{number} {request['method']} {request['path'][:80]} "
                            f"?{request['query_string'][:40]}: {error!r}"[:300])
        statuses[status] = statuses.get(status, 0) + 1
        if 500 <= status < 599:
            failures.append(f"#{number} {request['method']} {request['path'][:80]} -> {status}")
    # Records of the requests (this thread), not of a worker thread a previous test started.
    errors = [f"{record.name}: {record.getMessage()[:200]}" for record in caplog.records
              if record.thread == threading.get_ident()
              and (record.levelno >= logging.ERROR or record.exc_info)]
    print(f"{REQUESTS} requests over {len(rules)} routes; answers: {sorted(statuses.items())}")
    assert failures == [], f"{len(failures)} answered 5xx or raised:\n" + "\n".join(failures[:20])
    assert errors == [], "\n".join(errors[:20])
    assert sum(statuses.values()) == REQUESTS
    assert sum(count for status, count in statuses.items() if 400 <= status < 500) > REQUESTS / 2
    # Junk changed nothing: the reader is still subscribed.
    with app.app_context():
        assert db.session.get(Subscriber, reader_id).status == SubscriberStatus.ACTIVE
        assert db.session.scalar(select(func.count()).select_from(Subscriber).where(
            Subscriber.status == SubscriberStatus.UNSUBSCRIBED)) == 0
