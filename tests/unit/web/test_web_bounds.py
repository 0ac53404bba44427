"""Pure bounds of the web edge: JSON depth, ids, the spreadsheet-safe export cell."""

import pytest
from flask import Flask

from newsletter.readers.subscriber_lists import spreadsheet_safe
from newsletter.web.security import MAX_JSON_DEPTH, BoundedJSONProvider, _json_problem


def test_json_depth_is_bounded_without_recursion():
    provider = BoundedJSONProvider(Flask(__name__))
    assert provider.loads('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert provider.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    with pytest.raises(ValueError, match="nested"):
        provider.loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match="nested"):
        provider.loads("[" * 100_000 + "]" * 100_000)  # json's own RecursionError
    assert _json_problem([{}] * 100_000, 2) is None
    with pytest.raises(ValueError, match="NUL"):
        provider.loads('{"email": "a\\u0000@example.com"}')
    with pytest.raises(ValueError, match="NUL"):
        provider.loads('{"a\\u0000": 1}')


def test_id_converter_refuses_what_the_database_cannot_hold():
    from werkzeug.routing import Map, Rule

    from newsletter.web.security import IdConverter

    urls = Map([Rule("/archive/<int:digest_id>", endpoint="issue")],
               converters={"int": IdConverter}).bind("localhost")
    assert urls.match("/archive/2147483647") == ("issue", {"digest_id": 2**31 - 1})
    for path in ["/archive/2147483648", "/archive/99999999999999999999", "/archive/0",
                 "/archive/-1", "/archive/１２", "/archive/1e3"]:
        with pytest.raises(Exception) as error:
            urls.match(path)
        assert getattr(error.value, "code", None) == 404, path


@pytest.mark.parametrize("value, expected", [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("+1", "'+1"), ("-1", "'-1"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("Ada", "Ada"), ("", ""),
    ("a=b", "a=b"),
])
def test_spreadsheet_safe_cells(value, expected):
    assert spreadsheet_safe(value) == expected
