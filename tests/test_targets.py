"""Targets: reference parsing, the API's naming rules, the streamed readers, dedup and sharding."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import sys
import threading
import tracemalloc
import warnings
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crawler.errors import ConfigError
from crawler.targets import (
    InvalidTarget,
    ParsedTarget,
    SeenSet,
    Target,
    dedup,
    in_shard,
    iter_targets,
    names,
    parse_reference,
    target_hash,
    validate,
)
from crawler.targets.names import SOURCE_MAX
from crawler.targets.readers import MAX_LINE_BYTES, ReadInterrupted

LOWER = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
SWR_HOST = re.compile(r"swr\.[a-z0-9-]+\.myhuaweicloud\.(com|eu)", re.IGNORECASE)

# --------------------------------------------------------------------------- strategies


@st.composite
def _names(draw: st.DrawFn, first: str, separators: list[str], limit: int) -> str:
    """A name by the grammar: components of [a-z0-9]+ joined by single separators or '__'."""
    parts = [draw(st.sampled_from(first)), draw(st.text(LOWER + DIGITS, max_size=6))]
    for _ in range(draw(st.integers(0, 6))):
        parts.append(draw(st.sampled_from(separators)))
        parts.append(draw(st.text(LOWER + DIGITS, min_size=1, max_size=8)))
    name = "".join(parts)
    assume(len(name) <= limit)
    return name


namespaces = _names(LOWER, [".", "_", "-", "__"], 64)
repositories = _names(LOWER + DIGITS, [".", "/", "_", "-", "__"], 128)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
hosts = st.one_of(
    st.builds(
        "swr.{}.myhuaweicloud.{}".format,
        st.sampled_from(["cn-north-4", "ap-southeast-1", "la-south-2", "eu-west-101"]),
        st.sampled_from(["com", "eu"]),
    ),
    st.builds("{}.{}.{}.{}:{}".format, *[st.integers(0, 255)] * 4, st.integers(1, 65535)),
    st.sampled_from(["localhost:5000", "Registry.Example.com:443", "[::1]:5000"]),
)


# --------------------------------------------------------------------------- Target


def test_target_key_str_and_request_path() -> None:
    """key/str are namespace/repository:tag; the request path sends '/' in the repository as '$'."""
    target = Target("ns", "team/app", "v1.0")
    assert target.key == str(target) == "ns/team/app:v1.0"
    assert target.request_path == "/v2/manage/namespaces/ns/repos/team$app/tags/v1.0"


def test_invalid_target_key_is_its_source() -> None:
    """An invalid entry is deduplicated by its source text."""
    invalid = parse_reference("ns/Repo:1")
    assert isinstance(invalid, InvalidTarget)
    assert invalid.key == "ns/Repo:1"


# --------------------------------------------------------------------------- parse_reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns/repo:tag", ("ns", "repo", "tag")),
        ("  ns/repo:tag \t", ("ns", "repo", "tag")),
        ("swr.cn-north-4.myhuaweicloud.com/ns/repo:tag", ("ns", "repo", "tag")),
        ("swr.eu-west-101.myhuaweicloud.eu/ns/a/b:v1", ("ns", "a/b", "v1")),
        ("SWR.CN-NORTH-4.MYHUAWEICLOUD.COM/ns/repo:1", ("ns", "repo", "1")),
        ("swr.cn-north-4.myhuaweicloud.com:443/ns/repo:1", ("ns", "repo", "1")),
        ("10.125.0.198:20202/ns/repo:tag", ("ns", "repo", "tag")),
        ("localhost:5000/ns/a/b/c:tag", ("ns", "a/b/c", "tag")),
        ("[::1]:5000/ns/repo:tag", ("ns", "repo", "tag")),
        # No ':' and not an SWR domain: the first component is the namespace.
        ("my.namespace/repo:tag", ("my.namespace", "repo", "tag")),
        ("docker.io/library/nginx:1.25", ("docker.io", "library/nginx", "1.25")),
        (
            "swr.cn-north-4.myhuaweicloud.cn/ns/repo:1",
            ("swr.cn-north-4.myhuaweicloud.cn", "ns/repo", "1"),
        ),
        # A namespace spelled like an SWR domain is reachable with a host in front.
        (
            "h:1/swr.cn-north-4.myhuaweicloud.com/repo:1",
            ("swr.cn-north-4.myhuaweicloud.com", "repo", "1"),
        ),
    ],
)
def test_parse_reference_accepts_and_drops_hosts(text: str, expected: tuple[str, str, str]) -> None:
    """A registry host (a port, or an SWR domain) is dropped; else it is the namespace."""
    assert parse_reference(text) == Target(*expected)


@pytest.mark.parametrize(
    ("text", "parsed", "fragment"),
    [
        ("ns/repo", ("ns", "repo", None), "missing tag"),
        ("ns/repo:", ("ns", "repo", None), "missing tag"),
        ("10.0.0.1:5000/ns/repo", ("ns", "repo", None), "missing tag"),
        ("ns:tag", ("ns", None, "tag"), "missing repository"),
        ("swr.cn-north-4.myhuaweicloud.com/ns:tag", ("ns", None, "tag"), "missing repository"),
        ("", (None, None, None), "empty reference"),
        ("ns/repo@sha256:" + "a" * 64, ("ns", "repo", None), "digest reference '@sha256:"),
        ("ns/repo:v1@sha256:" + "a" * 64, ("ns", "repo", "v1"), "the API looks up tags"),
        ("ns/a$b:v1", ("ns", "a$b", "v1"), "repository 'a$b': contains '$'; write '/'"),
        ("Foo/repo:1", ("Foo", "repo", "1"), "namespace 'Foo': must start with a lowercase letter"),
        ("ns/repo:-1", ("ns", "repo", "-1"), "tag '-1': must start with"),
        ("ns//repo:1", ("ns", "/repo", "1"), "repository '/repo': must start with"),
    ],
)
def test_parse_reference_rejects_with_parts_and_reason(
    text: str, parsed: tuple[str | None, ...], fragment: str
) -> None:
    """A bad reference keeps what could be parsed and says what is wrong."""
    result = parse_reference(text)
    assert isinstance(result, InvalidTarget)
    assert (result.namespace, result.repository, result.tag) == parsed
    assert fragment in result.reason
    assert result.source == text


def test_parse_reference_cuts_long_input() -> None:
    """Source and parsed parts are cut to SOURCE_MAX; the value quoted in the reason is shorter."""
    text = "ns/repo:" + "x" * 5000
    result = parse_reference(text)
    assert isinstance(result, InvalidTarget)
    assert len(result.source) == SOURCE_MAX
    assert result.tag is not None
    assert len(result.tag) == SOURCE_MAX
    assert "5000 characters long, the limit is 128" in result.reason
    assert len(result.reason) < 200


# --------------------------------------------------------------------------- naming rules


@pytest.mark.parametrize(
    "namespace",
    ["a", "a" * 64, "a1", "a.b", "a_b", "a__b", "a-b", "a.b-c_d__e", "z9", "ab__cd_ef"],
)
def test_validate_accepts_namespace(namespace: str) -> None:
    """Namespaces within the API's rules, at the 64-character and '__' boundaries, pass."""
    assert validate(namespace, "repo", "v1") is None


@pytest.mark.parametrize(
    ("namespace", "fragment"),
    [
        ("", "namespace is empty"),
        ("a" * 65, "65 characters long, the limit is 64"),
        ("1a", "must start with a lowercase letter"),
        ("_a", "must start with a lowercase letter"),
        ("Foo", "must start with a lowercase letter"),
        ("a_", "must end with a lowercase letter or digit"),
        ("a.", "must end with a lowercase letter or digit"),
        ("a-", "must end with a lowercase letter or digit"),
        ("fOo", "contains uppercase 'O'"),
        ("a b", "contains ' '"),
        ("a/b", "contains '/'"),
        ("caf\u00e9", "contains '\u00e9'"),
        ("a___b", "more than two underscores in a row"),
        ("a.-b", "separators '.-' next to each other"),
        ("a-.b", "separators '-.' next to each other"),
        ("a_-b", "separators '_-' next to each other"),
        ("a__.b", "separators '_.' next to each other"),
        ("a..b", "separators '..' next to each other"),
        ("a--b", "separators '--' next to each other"),
    ],
)
def test_validate_rejects_namespace(namespace: str, fragment: str) -> None:
    """Each namespace rule is enforced, and the reason names the namespace, quoted."""
    reason = validate(namespace, "repo", "v1")
    assert reason is not None
    assert reason.startswith("namespace")
    assert fragment in reason
    if namespace and len(namespace) <= 60:
        assert repr(namespace) in reason


@pytest.mark.parametrize(
    "repository",
    ["a", "1", "0abc", "a" * 128, "a/b", "a/b/c", "a__b", "a.b-c/d_e", "1/2", "a__b/c__d"],
)
def test_validate_accepts_repository(repository: str) -> None:
    """Repositories within the API's rules, at the 128-character and '__' boundaries, pass."""
    assert validate("ns", repository, "v1") is None


@pytest.mark.parametrize(
    ("repository", "fragment"),
    [
        ("", "repository is empty"),
        ("a" * 129, "129 characters long, the limit is 128"),
        ("/a", "must start with a lowercase letter or digit"),
        ("-a", "must start with a lowercase letter or digit"),
        ("a/", "must end with a lowercase letter or digit"),
        ("a__", "must end with a lowercase letter or digit"),
        ("a//b", "separators '//' next to each other"),
        ("a/.b", "separators '/.' next to each other"),
        ("a./b", "separators './' next to each other"),
        ("a_/b", "separators '_/' next to each other"),
        ("a___b", "more than two underscores in a row"),
        ("a$b", "contains '$'; write '/'"),
        ("aBc", "contains uppercase 'B'"),
        ("aB", "must end with a lowercase letter or digit"),
        ("a:b", "contains ':'"),
    ],
)
def test_validate_rejects_repository(repository: str, fragment: str) -> None:
    """Each repository rule is enforced, and the reason names the repository, quoted."""
    reason = validate("ns", repository, "v1")
    assert reason is not None
    assert reason.startswith("repository")
    assert fragment in reason


@pytest.mark.parametrize(
    "tag", ["a", "A", "_", "1", "x" * 128, "v1.2.3-rc_1", "latest", "__", "V-"]
)
def test_validate_accepts_tag(tag: str) -> None:
    """Tags by the docker grammar, up to 128 characters, pass."""
    assert validate("ns", "repo", tag) is None


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ("", "tag is empty"),
        ("x" * 129, "129 characters long, the limit is 128"),
        (".a", "must start with a letter, digit or '_'"),
        ("-a", "must start with a letter, digit or '_'"),
        ("a/b", "contains '/'"),
        ("a b", "contains ' '"),
        ("a+b", "contains '+'"),
    ],
)
def test_validate_rejects_tag(tag: str, fragment: str) -> None:
    """Each tag rule is enforced, and the reason names the tag."""
    reason = validate("ns", "repo", tag)
    assert reason is not None
    assert reason.startswith("tag")
    assert fragment in reason


def _rules_allow(name: str, first: str, separators: str, limit: int) -> bool:
    """The API page's rules written out plainly, as an oracle for the regexes."""
    if not 1 <= len(name) <= limit or name[0] not in first or name[-1] not in LOWER + DIGITS:
        return False
    if any(char not in LOWER + DIGITS + separators for char in name) or "___" in name:
        return False
    pairs = (name[i : i + 2] for i in range(len(name) - 1))
    return not any(p[0] in separators and p[1] in separators and p != "__" for p in pairs)


@given(st.text(alphabet="ab1._-/$A ", max_size=70))
def test_validate_agrees_with_the_written_rules(name: str) -> None:
    """The regexes accept exactly the names the written rules accept, for both name kinds."""
    ns_ok = _rules_allow(name, LOWER, "._-", 64)
    assert (validate(name, "repo", "v1") is None) == ns_ok
    repo_ok = _rules_allow(name, LOWER + DIGITS, "./_-", 128)
    assert (validate("ns", name, "v1") is None) == repo_ok
    for reason in (validate(name, "repo", "v1"), validate("ns", name, "v1")):
        assert reason is None or not reason.endswith(": invalid")  # a specific rule was named


# --------------------------------------------------------------------------- properties


@given(namespaces, repositories, tags)
def test_valid_targets_round_trip(namespace: str, repository: str, tag: str) -> None:
    """Any grammatical namespace/repository:tag parses back to the same Target."""
    assume(SWR_HOST.fullmatch(namespace) is None)  # would be read as a host, by design
    target = Target(namespace, repository, tag)
    assert validate(namespace, repository, tag) is None
    assert parse_reference(f"{namespace}/{repository}:{tag}") == target
    assert parse_reference(target.key) == target


@given(hosts, namespaces, repositories, tags)
def test_valid_targets_round_trip_behind_a_host(
    host: str, namespace: str, repository: str, tag: str
) -> None:
    """A registry host in front of any valid reference is dropped."""
    reference = f"{host}/{namespace}/{repository}:{tag}"
    assert parse_reference(reference) == Target(namespace, repository, tag)


@given(st.text())
def test_parse_reference_never_raises(text: str) -> None:
    """Arbitrary text gives a Target or a one-line, UTF-8-safe, bounded InvalidTarget."""
    result = parse_reference(text)
    if isinstance(result, Target):
        assert validate(result.namespace, result.repository, result.tag) is None
        return
    assert "\n" not in result.reason
    assert "\r" not in result.reason
    assert len(result.source) <= SOURCE_MAX
    for value in (result.reason, result.source, result.namespace, result.repository, result.tag):
        if value is not None:
            value.encode("utf-8")  # raises on a lone surrogate: Parquet could not store it


@given(st.text(alphabet="ab1._-/:@A $#", max_size=40))
def test_fast_path_agrees_with_step_by_step_parse(text: str) -> None:
    """The one-regex fast path gives the same result as the rule-by-rule parse."""
    assert names.parse_stripped(text) == names._parse_slowly(text)


@given(namespaces, repositories, tags)
def test_request_path_has_no_slash_inside_the_repository(
    namespace: str, repository: str, tag: str
) -> None:
    """The repository is one path segment in the request path, with '/' sent as '$'."""
    parts = Target(namespace, repository, tag).request_path.split("/")
    assert parts[:4] == ["", "v2", "manage", "namespaces"]
    assert len(parts) == 9
    assert parts[4:] == [namespace, "repos", repository.replace("/", "$"), "tags", tag]


# --------------------------------------------------------------------------- hashing, dedup


def test_target_hash_is_pinned() -> None:
    """The hash is the same in every process and run (PYTHONHASHSEED plays no part)."""
    assert target_hash("ns/repo:tag") == 2594013462220749966
    assert target_hash("") == 13020603013274838756


def test_target_hash_never_returns_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zero digest is mapped to 1, since 0 marks an empty SeenSet slot."""

    class ZeroDigest:
        def __init__(self, data: bytes, digest_size: int) -> None:
            pass

        def digest(self) -> bytes:
            return bytes(8)

    monkeypatch.setattr(dedup, "blake2b", ZeroDigest)
    assert target_hash("anything") == 1


@given(st.text())
def test_target_hash_is_an_unsigned_64_bit_integer(key: str) -> None:
    """Any string, lone surrogates included, hashes to 1 .. 2**64-1."""
    assert 0 < target_hash(key) < 2**64


@given(st.lists(st.text(alphabet="abc/:", max_size=4), max_size=300))
def test_seen_set_agrees_with_a_set(keys: list[str]) -> None:
    """add/len/in behave like a Python set over any key sequence, across table growth."""
    seen = SeenSet()
    reference: set[str] = set()
    for key in keys:
        assert seen.add(key) == (key not in reference)
        reference.add(key)
        assert len(seen) == len(reference)
    assert all(key in seen for key in reference)
    assert all((key in seen) == (key in reference) for key in ["", "zz", "a", "ab"])


def test_seen_set_grows_and_stays_compact() -> None:
    """50k keys fit in a table of at most 32 bytes a key, and all are found again."""
    seen = SeenSet()
    keys = [f"ns/repo:{i}" for i in range(50_000)]
    assert all(seen.add(key) for key in keys)
    assert not any(seen.add(key) for key in keys)
    assert len(seen) == 50_000
    assert seen.nbytes <= 32 * 50_000
    assert SeenSet(expected=50_000).nbytes == seen.nbytes


def test_seen_set_slots_are_distinct_and_stay_put_up_to_the_expected_count() -> None:
    """A set made for n keys gives each added key its own slot, the same before and after
    the other keys arrive; a key never added has none."""
    keys = [f"ns/repo:{i}" for i in range(1000)]
    seen = SeenSet(expected=len(keys))
    seen.add(keys[0])
    first = seen.slot(keys[0])
    for key in keys[1:]:
        seen.add(key)
    slots = [seen.slot(key) for key in keys]
    assert slots[0] == first is not None
    assert len(set(slots)) == len(keys)
    assert all(slot is not None and 0 <= slot < seen.slots for slot in slots)
    assert seen.slot("ns/repo:missing") is None


def test_seen_set_handles_the_keys_of_one_shard() -> None:
    """Keys all in one shard (same low hash bits) are stored and found like any others."""
    keys = [f"ns/r:{i}" for i in range(20_000)]
    mine = [key for key in keys if in_shard(key, 1, 4)]
    seen = SeenSet()
    assert all(seen.add(key) for key in mine)
    assert all(key in seen for key in mine)
    assert sum(key in seen for key in keys) == len(mine)


@given(st.text(), st.integers(1, 8))
def test_in_shard_partitions(key: str, count: int) -> None:
    """For 1..8 shards every key is in exactly one shard."""
    assert sum(in_shard(key, index, count) for index in range(count)) == 1


def test_in_shard_spreads_keys_and_rejects_bad_arguments() -> None:
    """Shards get similar shares of keys; an index outside 0..count-1 is an error."""
    counts = [0, 0, 0, 0]
    for i in range(8000):
        counts[next(s for s in range(4) if in_shard(f"ns/r:{i}", s, 4))] += 1
    assert all(1800 < c < 2200 for c in counts)
    for index, count in [(0, 0), (3, 3), (-1, 2)]:
        with pytest.raises(ValueError, match="shard"):
            in_shard("k", index, count)


# --------------------------------------------------------------------------- readers


def _read(path: Path | str, fmt: str = "auto") -> list[ParsedTarget]:
    with iter_targets(str(path), fmt) as reader:
        return list(reader)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.TextIOWrapper:
    """A real pipe as stdin, holding ``data`` and then EOF (the reader reads the descriptor)."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    stream = open(read_end, encoding="utf-8")  # noqa: SIM115 - the test closes it
    monkeypatch.setattr(sys, "stdin", stream)
    return stream


TEXT_FILE = (
    b"\xef\xbb\xbfns/repo:v1\r\n"
    b"\r\n"
    b"   # an indented comment\n"
    b"#ns/commented:out\n"
    b"ns/a/b:v2   # a trailing comment\n"
    b"ns/repo:v3#no-space-before-hash\n"
    b"swr.cn-north-4.myhuaweicloud.com/ns/repo:v4\t\n"
    b"ns/caf\xe9:v5\n"
    b"# caf\xe9: a comment in latin-1\n"
    b"ns/repo:v6 # caf\xe9\n"
    b"ns/repo:v7"
)


def test_text_reader(tmp_path: Path) -> None:
    """BOM, CRLF, blanks, comments, hosts, a bare '#', a bad UTF-8 line, no final newline."""
    path = tmp_path / "targets.txt"
    path.write_bytes(TEXT_FILE)
    results = _read(path)
    assert results[0] == Target("ns", "repo", "v1")
    assert results[1] == Target("ns", "a/b", "v2")
    hashed = results[2]
    assert isinstance(hashed, InvalidTarget)
    assert hashed.tag == "v3#no-space-before-hash"
    assert "contains '#'" in hashed.reason
    assert results[3] == Target("ns", "repo", "v4")
    undecodable = results[4]
    assert isinstance(undecodable, InvalidTarget)
    assert undecodable.reason == "not valid UTF-8 (byte 0xe9 at offset 6)"
    assert undecodable.source == "ns/caf\\xe9:v5"
    assert (undecodable.namespace, undecodable.tag) == ("ns", "v5")
    assert results[5:] == [Target("ns", "repo", "v6"), Target("ns", "repo", "v7")]


def test_text_reader_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """'-' reads stdin's bytes as text targets, whatever the format guess."""
    stream = _stdin(monkeypatch, b"ns/repo:v1\nns/repo\n")
    results = _read("-")
    stream.close()
    assert results[0] == Target("ns", "repo", "v1")
    assert isinstance(results[1], InvalidTarget)
    assert "missing tag" in results[1].reason


def test_overlong_line_is_one_invalid_target(tmp_path: Path) -> None:
    """A line over MAX_LINE_BYTES is reported once and skipped; the next line is read."""
    path = tmp_path / "targets.txt"
    path.write_bytes(b"ns/repo:" + b"x" * (MAX_LINE_BYTES + 10) + b"\nns/repo:v1\n")
    results = _read(path)
    assert isinstance(results[0], InvalidTarget)
    assert "line longer than" in results[0].reason
    assert len(results[0].source) <= SOURCE_MAX
    assert results[1:] == [Target("ns", "repo", "v1")]


JSONL_FILE = b"""{"namespace": "ns", "repository": "a/b", "tag": "v1", "extra": 1}

not json
[1, 2]
{"namespace": "ns", "repository": "r"}
{"namespace": "ns", "repository": "r", "tag": 5}
{"namespace": "NS", "repository": "r", "tag": "v1"}
{"namespace": " ns", "repository": "r", "tag": "v1"}
"""


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_jsonl_reader(tmp_path: Path, suffix: str) -> None:
    """JSON lines: good objects become targets, each kind of bad line an InvalidTarget."""
    path = tmp_path / f"targets{suffix}"
    path.write_bytes(JSONL_FILE)
    results = _read(path)
    assert results[0] == Target("ns", "a/b", "v1")
    reasons = [r.reason for r in results[1:] if isinstance(r, InvalidTarget)]
    assert len(reasons) == len(results) - 1 == 6
    assert reasons[0].startswith("not JSON: ")
    assert reasons[1] == "not a JSON object (got array)"
    assert reasons[2] == "missing key 'tag'"
    assert reasons[3] == "key 'tag' is not a string (got number)"
    assert reasons[4].startswith("namespace 'NS'")
    assert reasons[5].startswith("namespace ' ns'")  # values are taken as they are
    missing = results[3]
    assert isinstance(missing, InvalidTarget)
    assert (missing.namespace, missing.repository, missing.tag) == ("ns", "r", None)
    assert missing.source == '{"namespace": "ns", "repository": "r"}'


CSV_FILE = b"""\xef\xbb\xbfextra, Tag ,repository,NAMESPACE
x,v1,a/b,ns
y,,r,ns
z,v1
,,,
w,v2,r,Bad
"q,1",v3," team/app ",ns
"""


def test_csv_reader(tmp_path: Path) -> None:
    """Columns in any order and case, extra columns, empty/missing fields, blank rows, quoting."""
    path = tmp_path / "targets.csv"
    path.write_bytes(CSV_FILE)
    results = _read(path)
    assert results[0] == Target("ns", "a/b", "v1")
    empty, short, bad = results[1:4]
    assert isinstance(empty, InvalidTarget)
    assert empty.reason == "empty field 'tag'"
    assert (empty.namespace, empty.repository, empty.tag) == ("ns", "r", None)
    assert empty.source == "y,,r,ns"
    assert isinstance(short, InvalidTarget)
    assert short.reason == "missing field 'namespace'"
    assert isinstance(bad, InvalidTarget)
    assert bad.reason.startswith("namespace 'Bad'")
    assert results[4] == Target("ns", "team/app", "v3")
    assert len(results) == 5


def test_csv_reader_from_stdin_leaves_stdin_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """fmt='csv' on stdin reads the rows and does not close stdin."""
    stream = _stdin(monkeypatch, b"namespace,repository,tag\nns,r,v1\n")
    assert _read("-", "csv") == [Target("ns", "r", "v1")]
    assert not stream.buffer.closed
    os.fstat(stream.fileno())  # the descriptor itself is still open
    stream.close()


def test_csv_bad_utf8_and_oversized_field_cost_one_row(tmp_path: Path) -> None:
    """A row with bytes that are not UTF-8, or a field over the csv limit, is one InvalidTarget."""
    path = tmp_path / "targets.csv"
    huge = b"a" * 200_000
    path.write_bytes(b"namespace,repository,tag\nns,r\xff,v1\nns,r," + huge + b"\nns,r,v2\n")
    undecodable, oversized, good = _read(path)
    assert isinstance(undecodable, InvalidTarget)
    assert undecodable.reason.startswith("not valid UTF-8; repository 'r\\udcff'")
    assert undecodable.source == "ns,r\\xff,v1"
    assert undecodable.repository == "r\\xff"
    assert isinstance(oversized, InvalidTarget)
    assert oversized.reason.startswith("bad CSV record: field larger than field limit")
    assert good == Target("ns", "r", "v2")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"namespace,repository\nns,r\n", "header lacks column 'tag'"),
        (b"ns/r:v1\n", "header lacks columns 'namespace', 'repository', 'tag'"),
        (b"", "empty file, expected a CSV header with namespace,repository,tag"),
    ],
)
def test_csv_header_problems_raise_config_error_at_once(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """A header without the three columns is a ConfigError from the iter_targets call itself."""
    path = tmp_path / "targets.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        iter_targets(str(path))
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_unreadable_targets_raise_config_error(tmp_path: Path) -> None:
    """A missing file, a directory or an unknown format is a one-line ConfigError naming it."""
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match=r"cannot read targets file .*nope\.txt: No such file"):
        iter_targets(str(missing))
    with pytest.raises(ConfigError, match="cannot read targets file"):
        iter_targets(str(tmp_path))
    with pytest.raises(ConfigError, match="unknown targets format 'xml'"):
        iter_targets(str(missing), "xml")


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    """fmt names the format whatever the file is called."""
    path = tmp_path / "targets.txt"
    path.write_bytes(b"namespace,repository,tag\nns,r,v1\n")
    assert _read(path, "csv") == [Target("ns", "r", "v1")]
    assert isinstance(_read(path, "text")[0], InvalidTarget)


def test_reader_releases_the_file(tmp_path: Path) -> None:
    """A reader read to its end, closed or dropped early leaves no open file."""
    path = tmp_path / "targets.txt"
    path.write_bytes(b"ns/r:v1\nns/r:v2\n")
    reader = iter_targets(str(path))
    assert next(reader) == Target("ns", "r", "v1")
    assert list(reader) == [Target("ns", "r", "v2")]
    closed_early = iter_targets(str(path))
    closed_early.close()
    assert list(closed_early) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = iter_targets(str(path))
        del dropped
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_reading_is_streamed(tmp_path: Path) -> None:
    """100k lines (~3 MB) are read with a peak far below the file size: nothing accumulates."""
    path = tmp_path / "big.txt"
    lines = 100_000
    with path.open("w") as out:
        out.writelines(
            f"team-{i % 100}/app/svc-{i}:v{i % 10}\n" if i % 50 else "Bad/x:1\n"
            for i in range(lines)
        )
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = invalid = 0
        for result in iter_targets(str(path)):
            count += 1
            invalid += isinstance(result, InvalidTarget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == lines
    assert invalid == lines // 50
    assert peak < size / 20


def test_invalid_targets_carry_their_line_number(tmp_path: Path) -> None:
    """Text, JSON-lines and CSV readers give each invalid record the line it was on."""
    text = tmp_path / "t.txt"
    text.write_bytes(b"# header comment\nns/r:v1\n\nBad/x:1\n")
    (bad,) = [item for item in _read(text) if isinstance(item, InvalidTarget)]
    assert bad.line == 4
    assert bad.message.startswith("line 4: namespace 'Bad'")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(b'{"namespace":"ns","repository":"r","tag":"v1"}\nnot json\n')
    assert [getattr(item, "line", None) for item in _read(jsonl)] == [None, 2]
    csv_file = tmp_path / "t.csv"
    csv_file.write_bytes(b"namespace,repository,tag\nns,r,v1\nns,,v2\n")
    assert [getattr(item, "line", None) for item in _read(csv_file)] == [None, 3]


def test_csv_records_too_big_to_parse_are_rows_of_their_own(tmp_path: Path) -> None:
    """Each CSV record with a field over the csv module's limit is its own invalid row,
    named by its line, so dedup cannot fold them into one."""
    path = tmp_path / "targets.csv"
    huge = b"a" * 140_000
    path.write_bytes(
        b"namespace,repository,tag\n" + b"".join(b"ns,r," + huge + b"\n" for _ in range(3))
    )
    items = _read(path)
    assert len(items) == 3
    assert all(isinstance(item, InvalidTarget) for item in items)
    assert len({item.key for item in items}) == 3
    assert [item.line for item in items if isinstance(item, InvalidTarget)] == [2, 3, 4]


def test_cr_only_line_ends_do_not_merge_lines(tmp_path: Path) -> None:
    """Lines ended by a lone CR (old Mac files) are separate references."""
    path = tmp_path / "targets.txt"
    path.write_bytes(b"ns/r:v1\rns/r:v2\rns/r:v3\r\nns/r:v4\r")
    assert _read(path) == [Target("ns", "r", f"v{i}") for i in range(1, 5)]


def test_interrupt_ends_a_read_blocked_on_a_pipe() -> None:
    """A read of a pipe whose writer stays open ends as soon as interrupt() is called."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"ns/r:v1\n")
    reader = iter_targets(f"/dev/fd/{read_end}")
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            list(reader)
        except BaseException as exc:  # the interruption, as the thread sees it
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join(timeout=0.2)
    assert thread.is_alive()  # blocked: the writer is still open
    reader.interrupt()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [ReadInterrupted]
    reader.close()
    os.close(read_end)
    os.close(write_end)


def test_interrupt_ends_reading_an_endless_device() -> None:
    """/dev/zero (one endless line) is read until interrupt(), then the read ends."""
    reader = iter_targets("/dev/zero")
    done = threading.Event()

    def consume() -> None:
        with contextlib.suppress(ReadInterrupted):
            list(reader)
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert not done.wait(0.2)
    reader.interrupt()
    assert done.wait(10)
    thread.join()
    reader.close()
