"""Turn SWR API response bodies into rows: pure functions, no I/O, no logging.

This is the hot path (one :func:`tag_row` per fetched tag, thousands a
second), so each body is decoded once with orjson, the manifest once, and the
common case of every coercion is a ``type(v) is ...`` check.

The official SDK gets several of these wrong; here:

* ``"false"`` in a bool field is False (the SDK makes it True);
* a manifest that arrives as a JSON object is stored as its compact JSON
  (the SDK stores its Python repr), and its facts are still derived;
* an ``errors`` list in an error body is read (the SDK ignores it);
* a value outside its column's Arrow range becomes None here instead of
  failing later, at Parquet-write time, and taking a whole batch with it.

Coercion rules (one per column type):

* int: a JSON integer, an integral float (``1.0``, up to 2**53, where floats
  stop being exact) or a decimal string (``"42"``, ``" 42 "``, ``"42.0"``);
  anything else, a bool, or a value out of the column's range -> None.
* bool: true/false, ``"true"``/``"false"`` (any case), 1/0 and ``"1"``/``"0"``;
  anything else -> None.
* string: a JSON string as is; a JSON integer as its decimal text (an id sent
  as a number); anything else -> None.
* timestamp: :func:`parse_timestamp`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Final, NamedTuple

import orjson

from crawler.output.rows import TagRow

__all__ = [
    "DecodeError",
    "ManifestFacts",
    "decode_object",
    "manifest_facts",
    "parse_timestamp",
    "tag_row",
    "tag_row_of",
]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

#: Media types of a multi-platform manifest (docker manifest list, OCI index).
LIST_MEDIA_TYPES: Final = frozenset(
    {
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    }
)

#: The fields of a tag-details answer that the API page documents. Any other
#: field goes, with its value as sent (null included), into the ``extra``
#: column, so nothing the service returns is thrown away. ``tag`` is
#: documented but not a column: the row's tag is the target's.
API_FIELDS: Final = frozenset(
    {
        "id",
        "repo_id",
        "tag",
        "image_id",
        "manifest",
        "digest",
        "schema",
        "path",
        "internal_path",
        "size",
        "is_trusted",
        "created",
        "updated",
        "domain_id",
        "tag_type",
    }
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD: Final = 10**11
#: The largest float magnitude below which every integer is exact (IEEE double).
_FLOAT_EXACT: Final = 2.0**53
#: Longer digit strings are out of int64 anyway; also keeps int() well below
#: Python's 4300-digit conversion limit.
_MAX_INT_TEXT: Final = 24


class DecodeError(ValueError):
    """A 200 whose body is not a JSON object (retried, then error_kind ``decode``)."""


class ManifestFacts(NamedTuple):
    """What the tags table derives from a manifest; every field None when unknown."""

    #: ``mediaType`` as written in the manifest; None when absent (see :func:`manifest_facts`).
    media_type: str | None
    #: ``config.digest`` of an image manifest; None for lists and schema 1.
    config_digest: str | None
    #: ``len(layers)``, or ``len(fsLayers)`` for schema 1; None for lists.
    layer_count: int | None
    #: Sum of ``layers[].size`` over the layers that give one: 0 for ``layers: []`` (an
    #: artifact with no layers), None when there are layers and none gives a size, for
    #: schema 1 and for lists (None always means "the manifest does not say").
    layers_size: int | None
    #: ``os/arch[/variant]`` per ``manifests[]`` entry of a list/index; None otherwise.
    platforms: list[str] | None


_NO_FACTS: Final = ManifestFacts(None, None, None, None, None)


# --- coercion -----------------------------------------------------------------


def _int_text(text: str) -> int | None:
    """Parse ``"42"``, ``"-7"``, ``"42.000"`` exactly; None for anything else."""
    text = text.strip()
    if not text or len(text) > _MAX_INT_TEXT or not text.isascii():
        return None
    whole, dot, fraction = text.partition(".")
    if dot and (fraction.strip("0") or not whole):
        return None
    digits = whole[1:] if whole[:1] in ("+", "-") else whole
    # isdigit() on ASCII text is exactly 0-9; int() alone would also take "1_000".
    if not digits.isdigit():
        return None
    return int(whole)


def _to_int(value: object, low: int, high: int) -> int | None:
    """``value`` as an int within ``[low, high]``, else None."""
    if type(value) is int:
        return value if low <= value <= high else None
    if value is None or isinstance(value, bool):
        return None
    number: int | None
    if isinstance(value, float):
        # Beyond 2**53 a float no longer names one integer: orjson turns a literal
        # past 64 bits into one (-9223372036854775809 -> -2.0**63, in range), so
        # only floats that are exact integers are trusted.
        number = int(value) if value.is_integer() and abs(value) <= _FLOAT_EXACT else None
    elif isinstance(value, int):
        number = int(value)
    elif isinstance(value, str):
        number = _int_text(value)
    else:
        return None
    if number is None or not low <= number <= high:
        return None
    return number


def _to_bool(value: object) -> bool | None:
    """true/false, "true"/"false" (any case), 1/0, "1"/"0"; else None."""
    if value is True or value is False:
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1"):
            return True
        if word in ("false", "0"):
            return False
        return None
    if type(value) is int and value in (0, 1):
        return value == 1
    return None


def _to_str(value: object) -> str | None:
    """A JSON string as is, an integer as its decimal text; else None."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# --- timestamps -----------------------------------------------------------------


def parse_timestamp(value: object) -> datetime | None:
    """An API timestamp as an aware UTC datetime truncated to µs; None if unusable.

    Accepts ISO 8601 with ``T`` or a space, 0-9 fractional digits (beyond 6
    truncated, never rounded), ``Z``, ``+08:00``, ``+0800`` or no zone (UTC,
    as the API page says); a lowercase ``z`` or a `` UTC``/``GMT`` suffix; and
    Unix epochs as numbers or digit strings (seconds, or milliseconds when
    above 1e11). Never raises.
    """
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _parse_text_slow(value)
        if parsed.tzinfo is UTC:
            return parsed
        return _as_utc(parsed)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(value)
    if isinstance(value, str):
        return parse_timestamp(str(value))
    return None


def _as_utc(parsed: datetime) -> datetime | None:
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+08:00 is before datetime.min
        return None


def _parse_text_slow(text: str) -> datetime | None:
    """The forms datetime.fromisoformat refuses: epochs as text, lowercase z, UTC suffix."""
    text = text.strip().upper()
    if not text:
        return None
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    if unsigned.replace(".", "", 1).isdigit() and unsigned.isascii():
        try:
            return _from_epoch(Decimal(text))
        except InvalidOperation:
            return None
    for suffix in (" UTC", " GMT", "UTC", "GMT"):
        if text.endswith(suffix):
            text = text[: -len(suffix)].rstrip() + "Z"
            break
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _as_utc(parsed)


def _from_epoch(value: int | float | Decimal) -> datetime | None:
    """Seconds (or ms above 1e11) since the epoch, truncated (floored) to µs."""
    if isinstance(value, int):
        scale = 1_000 if abs(value) > _EPOCH_MS_THRESHOLD else 1_000_000
        micros = value * scale
    else:
        if isinstance(value, float):
            if not math.isfinite(value):
                return None
            value = Decimal(repr(value))  # the digits the JSON had, not the binary float
        scale = 1_000 if abs(value) > _EPOCH_MS_THRESHOLD else 1_000_000
        micros = int((value * scale).to_integral_value(rounding=ROUND_FLOOR))
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None


# --- manifests -------------------------------------------------------------------


def manifest_facts(manifest: str | None) -> ManifestFacts:
    """The facts of a manifest given as JSON text; all None when it is unusable.

    * docker v2 / OCI image manifest: media type, ``config.digest``,
      ``len(layers)``, sum of the layer sizes given.
    * docker manifest list / OCI index (by ``mediaType``, or by a
      ``manifests`` array when ``mediaType`` is absent): media type and
      platforms only.
    * schema 1: ``len(fsLayers)``; no config, no sizes.

    ``media_type`` is only ever what the manifest itself says (null when
    absent, as README's "Output" promises). The OCI image spec makes ``mediaType`` a SHOULD, not a
    MUST; without it a manifest's type travels in the registry's Content-Type
    header, which the SWR API does not pass on. A shape-based guess ("has
    config and layers, so OCI") cannot tell OCI from a docker v2 document
    that omits the field, and a wrong media type in an audit is worse than a
    null one.

    Invalid JSON, a non-object, an empty string or None -> all None. Never raises.
    """
    if not isinstance(manifest, str) or not manifest:
        return _NO_FACTS
    try:
        document = orjson.loads(manifest)
    except orjson.JSONDecodeError:
        return _NO_FACTS
    return _facts_of(document)


def _facts_of(document: object) -> ManifestFacts:
    if type(document) is not dict:
        return _NO_FACTS
    media_type = document.get("mediaType")
    if type(media_type) is not str or not media_type:
        media_type = None
    entries = document.get("manifests")
    if media_type in LIST_MEDIA_TYPES or (
        media_type is None and type(entries) is list and "layers" not in document
    ):
        return ManifestFacts(media_type, None, None, None, _platforms(entries))

    config = document.get("config")
    config_digest = config.get("digest") if type(config) is dict else None
    if type(config_digest) is not str:
        config_digest = None

    layer_count: int | None = None
    layers_size: int | None = None
    layers = document.get("layers")
    if type(layers) is list:
        layer_count = len(layers)
        layers_size = _layers_size(layers)
    else:
        fs_layers = document.get("fsLayers")
        if type(fs_layers) is list:
            layer_count = len(fs_layers)
    if layer_count is not None and layer_count > INT32_MAX:
        layer_count = None
    return ManifestFacts(media_type, config_digest, layer_count, layers_size, None)


def _layers_size(layers: list[object]) -> int | None:
    total = 0
    sized = not layers  # no layers: the sum of no sizes is 0, nothing is left unsaid
    for layer in layers:
        if type(layer) is dict:
            size = layer.get("size")
            # An int in range is the common case, tested inline (once a layer of every tag).
            if type(size) is not int or not 0 <= size <= INT64_MAX:
                size = _to_int(size, 0, INT64_MAX)
                if size is None:
                    continue
            total += size
            sized = True
    if not sized or total > INT64_MAX:
        return None
    return total


def _platforms(entries: object) -> list[str] | None:
    """``os/arch[/variant]`` per entry that names both; None if there is no array.

    Attestation manifests (``unknown/unknown``) are kept as given: the column
    records the index, filtering is the reader's choice. Entries without a
    platform (or without os/architecture) are left out; none is invented.
    """
    if type(entries) is not list:
        return None
    platforms: list[str] = []
    for entry in entries:
        if type(entry) is not dict:
            continue
        platform = entry.get("platform")
        if type(platform) is not dict:
            continue
        os_name = platform.get("os")
        arch = platform.get("architecture")
        if type(os_name) is not str or type(arch) is not str or not os_name or not arch:
            continue
        variant = platform.get("variant")
        if type(variant) is str and variant:
            platforms.append(f"{os_name}/{arch}/{variant}")
        else:
            platforms.append(f"{os_name}/{arch}")
    return platforms


def _manifest_text(value: object) -> str | None:
    """A non-string manifest as compact JSON (what the API meant), never a repr."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, UnicodeDecodeError):  # pragma: no cover - loads output
        return None


# --- rows ------------------------------------------------------------------------


def decode_object(body: bytes | bytearray | memoryview | str) -> dict[str, object]:
    """The JSON object in ``body``; DecodeError if it is not JSON or not an object."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"response body is not valid JSON: {exc}") from None
    if type(document) is not dict:
        raise DecodeError(f"response body is a JSON {type(document).__name__}, not an object")
    return document


def tag_row(
    namespace: str,
    repository: str,
    tag: str,
    body: bytes,
    fetched_at: datetime,
    attempts: int,
) -> TagRow:
    """One ``tags`` row (:class:`~crawler.output.rows.TagRow`: the schema's columns, in order).

    ``namespace``/``repository``/``tag`` come from the target (repository with
    ``/``), not from the body. Fields the API page does not document go into
    ``extra`` (see :data:`API_FIELDS`). Values are the Python types pyarrow converts to
    each column's type; anything unusable or out of range is None.

    Raises DecodeError if ``body`` is not a JSON object; TypeError if
    ``fetched_at`` is naive (a caller bug: "when" must say in which zone).
    """
    return tag_row_of(namespace, repository, tag, decode_object(body), fetched_at, attempts)


def tag_row_of(
    namespace: str,
    repository: str,
    tag: str,
    data: dict[str, object],
    fetched_at: datetime,
    attempts: int,
) -> TagRow:
    """:func:`tag_row` of an answer already decoded: a ShowRepoTag object, or an
    item of a tag list page, which has the same fields (list mode)."""
    get = data.get

    raw_manifest = get("manifest")
    manifest: str | None
    if type(raw_manifest) is str:
        manifest = raw_manifest
        facts = manifest_facts(raw_manifest)
    elif raw_manifest is None:
        manifest = None
        facts = _NO_FACTS
    else:
        manifest = _manifest_text(raw_manifest)
        facts = _facts_of(raw_manifest)

    if fetched_at.tzinfo is not UTC:
        if fetched_at.tzinfo is None:
            raise TypeError("fetched_at must be timezone-aware")
        fetched_at = fetched_at.astimezone(UTC)

    # Positional, in the schema's column order (``TagRow``'s fields): a 25-field
    # NamedTuple built from keywords costs three times as much, once a row.
    return TagRow(
        namespace,
        repository,
        tag,
        _to_int(get("id"), INT64_MIN, INT64_MAX),
        _to_int(get("repo_id"), INT64_MIN, INT64_MAX),
        _to_str(get("image_id")),
        _to_str(get("digest")),
        _to_str(get("path")),
        _to_str(get("internal_path")),
        _to_str(get("domain_id")),
        _to_int(get("schema"), INT32_MIN, INT32_MAX),
        _to_int(get("tag_type"), INT32_MIN, INT32_MAX),
        _to_int(get("size"), 0, INT64_MAX),
        _to_bool(get("is_trusted")),
        parse_timestamp(get("created")),
        parse_timestamp(get("updated")),
        manifest,
        facts.media_type,
        facts.config_digest,
        facts.layer_count,
        facts.layers_size,
        facts.platforms,
        fetched_at,
        attempts,
        _extra(data),
    )


def _extra(data: dict[str, object]) -> str | None:
    """The undocumented fields of an answer as a JSON object (in the order sent); None if none."""
    if API_FIELDS.issuperset(data):  # the usual answer: no set built to learn that
        return None
    return orjson.dumps(
        {key: value for key, value in data.items() if key not in API_FIELDS}
    ).decode()
