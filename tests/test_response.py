"""Reading Huawei error bodies (``error_fields``): every form, bounded, never raising."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.http.response import CODE_LIMIT, ERROR_TEXT_LIMIT, MESSAGE_LIMIT, error_fields

HTML_502 = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>" + b"x" * 500


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'{"errors":[{"errorCode":"SVCSTG.SWR.4030170",'
            b'"errorMessage":"Insufficient permissions","detail":""}],'
            b'"error_code":"SVCSTG.SWR.4030170","error_msg":"Insufficient permissions"}',
            ("SVCSTG.SWR.4030170", "Insufficient permissions"),
            id="old-and-new-combined",
        ),
        pytest.param(
            b'{"errors":[{"errorCode":"SVCSTG.SWR.4040010",'
            b'"errorMessage":"image not found","detail":""}]}',
            ("SVCSTG.SWR.4040010", "image not found"),
            id="errors-list-only",
        ),
        pytest.param(
            b'{"errors":[{"errorCode":"SVCSTG.SWR.5000002",'
            b'"errorMessage":"","detail":"db timeout"}]}',
            ("SVCSTG.SWR.5000002", "db timeout"),
            id="errors-list-detail-when-message-empty",
        ),
        pytest.param(
            b'{"errors":[{}, {"errorCode":"SVCSTG.SWR.4000014","errorMessage":"bad param"}]}',
            ("SVCSTG.SWR.4000014", "bad param"),
            id="errors-list-first-useful-entry",
        ),
        pytest.param(
            b'{"errorCode":"SVCSTG.SWR.4010000","errorMsg":"token expired"}',
            ("SVCSTG.SWR.4010000", "token expired"),
            id="errorCode-errorMsg",
        ),
        pytest.param(
            b'{"errorCode":"SVCSTG.SWR.4000014","errorMessage":"bad request parameters"}',
            ("SVCSTG.SWR.4000014", "bad request parameters"),
            id="errorCode-errorMessage",
        ),
        pytest.param(
            b'{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached: '
            b'policy user over ratelimit,limit:20,time:1 minute","request_id":"7c1e"}',
            (
                "APIG.0308",
                "The throttling threshold has been reached: policy user over ratelimit,limit:20,"
                "time:1 minute",
            ),
            id="apig-429",
        ),
        pytest.param(
            b'{"error_code":"APIG.1002","error_msg":"Incorrect token or token resolution failed"}',
            ("APIG.1002", "Incorrect token or token resolution failed"),
            id="apig-401",
        ),
        pytest.param(
            b'{"error_code":"SVCSTG.SWR.4030170","errors":[{"errorMessage":"from the list"}]}',
            ("SVCSTG.SWR.4030170", "from the list"),
            id="top-level-code-list-message",
        ),
        pytest.param(
            b'{"error":{"code":"IAM.0001","title":"Unauthorized",'
            b'"message":"The request you have made requires authentication."}}',
            ("IAM.0001", "The request you have made requires authentication."),
            id="iam-nested-error",
        ),
        pytest.param(b'{"error_code":400,"error_msg":"x"}', ("400", "x"), id="numeric-code"),
        pytest.param(
            HTML_502, (None, HTML_502.decode().strip()[:200]), id="html-gateway-page-truncated"
        ),
        pytest.param(b"\xff\xfeoops", (None, "\ufffd\ufffdoops"), id="invalid-utf8"),
        pytest.param(b'{"message":"x"}', (None, '{"message":"x"}'), id="json-unknown-shape"),
        pytest.param(b'"Service Unavailable"', (None, "Service Unavailable"), id="json-string"),
        pytest.param(
            b'[{"errorCode":"E1","errorMessage":"m"}]', ("E1", "m"), id="bare-errors-array"
        ),
        pytest.param(b"", (None, None), id="empty"),
        pytest.param(b"  \r\n", (None, None), id="whitespace"),
        pytest.param(
            b'{"error_code":"","error_msg":""}',
            (None, '{"error_code":"","error_msg":""}'),
            id="empty-fields",
        ),
    ],
)
def test_error_fields(body: bytes, expected: tuple[str | None, str | None]) -> None:
    """Every Huawei error body form yields (code, message); other bodies show their text."""
    assert error_fields(body) == expected


def _encode(value: object) -> bytes:
    return json.dumps(value).encode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ERROR_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "error_code": st.text() | st.integers(),
        "error_msg": st.text(min_size=0, max_size=3000),
        "errors": st.lists(
            st.dictionaries(
                st.sampled_from(["errorCode", "errorMessage", "detail"]), st.text(max_size=2000)
            )
        ),
    },
)


@given(st.binary(max_size=3000) | JSON.map(_encode) | ERROR_SHAPED.map(_encode))
def test_error_fields_never_raises_and_is_bounded(body: bytes) -> None:
    """For any body: two optional strings, the code and message within their limits."""
    code, message = error_fields(body)
    assert code is None or (isinstance(code, str) and len(code) <= CODE_LIMIT)
    assert message is None or (isinstance(message, str) and len(message) <= MESSAGE_LIMIT)


def test_a_huge_json_message_is_cut_and_a_page_is_cut_shorter() -> None:
    """A 5 MB error_msg keeps MESSAGE_LIMIT characters; a non-JSON page ERROR_TEXT_LIMIT."""
    huge = orjson.dumps({"error_code": "E" * 500, "error_msg": "m" * 5_000_000})
    assert error_fields(huge) == ("E" * CODE_LIMIT, "m" * MESSAGE_LIMIT)
    page = b"<html>" + b"p" * 5_000_000
    assert error_fields(page) == (None, ("<html>" + "p" * 5_000_000)[:ERROR_TEXT_LIMIT])


def test_the_cleaner_sees_each_text_whole_before_the_cut() -> None:
    """The cleaner gets each field whole with its limit, so no secret is cut in half first."""
    seen: list[tuple[int, int]] = []

    def clean(text: str, limit: int) -> str:
        seen.append((len(text), limit))
        return text[:limit]

    error_fields(orjson.dumps({"error_code": "C" * 300, "error_msg": "x" * 4000}), clean)
    assert seen == [(300, CODE_LIMIT), (4000, MESSAGE_LIMIT)]
