"""The Scrubber: no secret survives in any spelling a server may use, nor half of one at a cut."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.http.secrets import WITHHELD, Scrubber, Secret, unescape_backslashes

PASSWORD = 'PWs\u00e9cret"77\\x'
TOKEN = "MIItok/en+LEAK=="


def scrubber(*secrets: str) -> Scrubber:
    scrub = Scrubber()
    for secret in secrets:
        scrub.add(secret)
    return scrub


@pytest.mark.parametrize(
    "spelling",
    [
        PASSWORD,
        json.dumps(PASSWORD)[1:-1],  # PWs\u00e9cret\"77\\x
        json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
        json.dumps(PASSWORD).upper()[1:-1],  # \U00E9: hex digits in capitals
        repr(PASSWORD)[1:-1],
        ascii(PASSWORD)[1:-1],  # \xe9
        repr(PASSWORD.encode())[2:-1],  # \xc3\xa9
        quote(PASSWORD, safe=""),
        quote_plus(PASSWORD),
        html.escape(PASSWORD),
        PASSWORD.encode("ascii", "xmlcharrefreplace").decode(),
        "".join(f"\\u{ord(c):04x}" for c in PASSWORD),  # every character escaped
        "".join(f"&#{ord(c)};" for c in PASSWORD),  # every character an HTML entity
        json.dumps(json.dumps(PASSWORD))[1:-1],  # escaped twice (JSON in a JSON string)
    ],
)
def test_every_spelling_of_a_password_is_removed(spelling: str) -> None:
    """The password in each encoding a body may use leaves no trace in the scrubbed text."""
    text = scrubber(PASSWORD)(f"login failed for {spelling} at IAM")
    assert text.startswith("login failed for ") or text == WITHHELD
    for form in ("PWs", "cret", "77"):
        assert form not in text


def test_a_plain_echo_is_masked_and_the_rest_kept() -> None:
    """A literal echo becomes *** and the operator still reads the message around it."""
    assert (
        scrubber(TOKEN)(f"Incorrect token {TOKEN} (APIG.1002)") == "Incorrect token *** (APIG.1002)"
    )


def test_matching_ignores_case() -> None:
    """A server that upper-cases what it echoes is caught too."""
    assert "LEAK" not in scrubber(TOKEN)(f"TOKEN={TOKEN.upper()}")


def test_a_cut_never_leaves_half_a_secret() -> None:
    """A secret that straddles the limit is removed before the text is cut."""
    text = "a" * 195 + TOKEN + "b" * 100
    assert scrubber(TOKEN)(text, 200) == "a" * 195 + "***" + "bb"


def test_secrets_learned_later_are_scrubbed_from_then_on() -> None:
    """A token added mid-run (an IAM-issued one) is removed from the next text."""
    scrub = scrubber(TOKEN)
    assert scrub("issued IAMTOKEN123") == "issued IAMTOKEN123"
    scrub.add(Secret("IAMTOKEN123"))
    assert scrub("issued IAMTOKEN123") == "issued ***"


def test_control_characters_are_escaped_and_whitespace_collapsed() -> None:
    """A server's ESC or BEL cannot reach the operator's terminal; newlines become spaces."""
    assert Scrubber()("red \x1b[31mALERT\x07\r\nnext") == "red \\x1b[31mALERT\\x07 next"


def test_the_scrubber_shows_no_secret_itself() -> None:
    """Its repr counts secrets and names none."""
    assert TOKEN not in repr(scrubber(TOKEN))


@given(st.text(max_size=40), st.text(max_size=40))
def test_an_echo_between_any_texts_is_removed(before: str, after: str) -> None:
    """Whatever surrounds it, the JSON-escaped password never survives."""
    text = scrubber(PASSWORD)(before + json.dumps(PASSWORD)[1:-1] + after)
    assert PASSWORD not in unescape_backslashes(text)
    assert json.dumps(PASSWORD)[1:-1] not in text
