from __future__ import annotations

import pytest

from cds_service.errors import BadRequest
from cds_service.protocol.jsonbody import deepest_path_over, parse_json_body


def test_nesting_at_the_limit_is_accepted():
    assert parse_json_body(b"[" * 64 + b"]" * 64, max_depth=64) is not None


def test_nesting_one_over_the_limit_names_the_path():
    body = b'{"a": {"b": [' + b"[" * 62 + b"]" * 62 + b"]}}"
    with pytest.raises(BadRequest) as error:
        parse_json_body(body, max_depth=64)
    assert error.value.issues[0].expression == "a.b" + "[0]" * 62


def test_depth_walk_finds_no_problem_in_flat_data():
    assert deepest_path_over({"a": [1, 2, {"b": "c"}]}, max_depth=3) is None


@pytest.mark.parametrize("raw", [b"NaN", b'{"x": Infinity}', b'{"x": -Infinity}'])
def test_non_finite_numbers_are_refused(raw):
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_json_body(raw, max_depth=64)


def test_utf8_byte_order_mark_is_tolerated():
    assert parse_json_body(b'\xef\xbb\xbf{"a": 1}', max_depth=64) == {"a": 1}


def test_syntax_error_reports_line_and_column():
    with pytest.raises(BadRequest, match="line 2 column 1"):
        parse_json_body(b'{"a": 1,\n}', max_depth=64)
