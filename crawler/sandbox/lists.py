"""The SWR list APIs, for registry discovery. Pure: query in, answer out.

Each function takes the catalogue, the path parameters and the query and
returns an :data:`Answer` ``(status, JSON value, extra headers)``; the server
serialises it. The quirks of the real service are kept on purpose (see
``docs/swr-api.md``): the v2 tag items name the tag ``"Tag"`` and
carry ``deleted``/``scanned``; the total of a v2 list is only in
``Content-Range`` (``first-last/total``, ``*/total`` for an empty page);
``nextMarker`` is an opaque string for v3 tags (``""`` at the end; a bad one
is a 400) and an integer for v3 repositories (``0`` at the end); a ``limit``
above 1,000 is a 400 with a Huawei error body. A v3 tag item has
``manifest`` ``""`` unless ``with_manifest=true``, and even then about one
item in :data:`EMPTY_MANIFEST_ONE_IN` comes with an empty manifest (the
service documents no such thing; a client must cope if it happens). The v3
tag marker is opaque to clients but an offset inside: a tag pushed or
deleted ahead of it between two pages shifts the next page, so a client may
see a tag twice or miss one, the worst case a client must survive. Tag lists
honour ``order_column`` (``updated_at`` or ``tag``) with ``order_type``
(``asc``/``desc``), which go together; a tag without ``updated`` sorts as
the oldest, as SQL sorts a null; equal keys keep catalogue order. Other
lists come in catalogue order.
"""

from __future__ import annotations

import base64
import binascii
import functools
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ParamSpec

from crawler.sandbox.catalogue import Catalogue, valid_namespace, valid_repository
from crawler.sandbox.faults import swr_error, swr_error_list_only

Answer = tuple[int, Any, dict[str, str]]
P = ParamSpec("P")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: About one v3 tag item in this many has an empty manifest even with with_manifest=true.
EMPTY_MANIFEST_ONE_IN = 200


class _BadQuery(Exception):
    """A query parameter or a name the service would refuse (400)."""


class _NoRepository(Exception):
    """The repository asked for is not in the catalogue (404)."""


def _bad_request(message: str) -> Answer:
    return 400, swr_error_list_only("SVCSTG.SWR.4000014", message), {}


def _not_found(what: str) -> Answer:
    code = "SVCSTG.SWR.4040002" if what == "Namespace" else "SVCSTG.SWR.4040003"
    return 404, swr_error(code, f"{what} not found"), {}


def _refusals_answered(list_api: Callable[P, Answer]) -> Callable[P, Answer]:
    """``list_api`` with the refusals it raises answered as the service answers them."""

    @functools.wraps(list_api)
    def answer(*args: P.args, **kwargs: P.kwargs) -> Answer:
        try:
            return list_api(*args, **kwargs)
        except _BadQuery as exc:
            return _bad_request(str(exc))
        except _NoRepository:
            return _not_found("Repository")

    return answer


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _BadQuery(f"{name} must be between {low} and {high}")
    return value


def _filters(query: Mapping[str, str]) -> dict[str, str]:
    """``namespace``/``name``/``category`` from the query and from ``filter=k::v|k::v``."""
    found = {key: query[key] for key in ("namespace", "name", "category", "tag") if query.get(key)}
    for part in query.get("filter", "").split("|"):
        key, sep, value = part.partition("::")
        if sep and value and key not in found:
            found[key] = value
    return found


def _content_range(offset: int, count: int, total: int) -> dict[str, str]:
    if count == 0:
        return {"Content-Range": f"*/{total}"}
    return {"Content-Range": f"{offset}-{offset + count - 1}/{total}"}


def _check_repository(catalogue: Catalogue, namespace: str, repository: str) -> None:
    """_BadQuery when the repository (``/``, not ``$``) breaks the naming rules,
    _NoRepository when it is not in the catalogue."""
    if not valid_namespace(namespace) or not valid_repository(repository):
        raise _BadQuery("Invalid namespace or repository name")
    i = catalogue.namespace_index(namespace)
    if i is None or catalogue.repository_index(i, repository) is None:
        raise _NoRepository


def list_namespaces(catalogue: Catalogue, query: Mapping[str, str]) -> Answer:
    """ListNamespaces, ``GET /v2/manage/namespaces``: not paginated."""
    wanted = _filters(query).get("namespace")
    items = [
        {"id": 100 + i, "name": name, "creator_name": catalogue.domain_name, "auth": 7}
        for i, name in enumerate(catalogue.namespaces())
        if wanted is None or name == wanted
    ]
    return 200, {"namespaces": items}, {}


def _v2_tag_item(item: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key, value in item.items():
        if key == "tag":
            converted["Tag"] = value
        elif key == "domain_id":
            converted["deleted"] = None
            converted[key] = value
        else:
            converted[key] = value
    converted.setdefault("scanned", False)
    return converted


TAG_ORDER_COLUMNS = ("updated_at", "tag")
_NULL_TIME = datetime.min.replace(tzinfo=UTC)  # sorts below every real time, as SQL's null


def _tag_items(
    catalogue: Catalogue, namespace: str, repository: str, query: Mapping[str, str]
) -> list[str]:
    """The tag names a tag list answers with, filtered and ordered as ``query`` asks."""
    column, direction = query.get("order_column"), query.get("order_type")
    if (column is None) != (direction is None):
        raise _BadQuery("order_column and order_type must be given together")
    if column is not None and column not in TAG_ORDER_COLUMNS:
        raise _BadQuery(f"order_column must be one of {', '.join(TAG_ORDER_COLUMNS)}")
    if direction is not None and direction not in ("asc", "desc"):
        raise _BadQuery("order_type must be asc or desc")
    if column is None:
        tags = catalogue.tags(namespace, repository)
    else:
        tags = list(_sorted_tags(catalogue, namespace, repository, column, direction == "desc"))
    tag_filter = _filters(query).get("tag")
    return tags if tag_filter is None else [tag for tag in tags if tag_filter in tag]


@lru_cache(maxsize=64)  # a walk asks for the same order page after page
def _sorted_tags(
    catalogue: Catalogue, namespace: str, repository: str, column: str, descending: bool
) -> tuple[str, ...]:
    def updated(tag: str) -> datetime:
        text = _details(catalogue, namespace, repository, tag).get("updated")
        return _NULL_TIME if text is None else datetime.fromisoformat(text)

    tags = catalogue.tags(namespace, repository)
    if column == "tag":
        return tuple(sorted(tags, reverse=descending))
    # Python's sort is stable with reverse=True too: equal keys keep catalogue order.
    keys = {tag: updated(tag) for tag in tags}
    return tuple(sorted(tags, key=keys.__getitem__, reverse=descending))


@_refusals_answered
def list_repository_tags_v2(
    catalogue: Catalogue, namespace: str, repository: str, query: Mapping[str, str]
) -> Answer:
    """ListRepositoryTags, ``GET /v2/manage/namespaces/{ns}/repos/{repo}/tags``."""
    _check_repository(catalogue, namespace, repository)
    offset = _int(query, "offset", 0, 0, 2**31)
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    names = _tag_items(catalogue, namespace, repository, query)
    page = names[offset : offset + limit]
    items = [_v2_tag_item(_details(catalogue, namespace, repository, tag)) for tag in page]
    return 200, items, _content_range(offset, len(items), len(names))


def _details(catalogue: Catalogue, namespace: str, repository: str, tag: str) -> dict[str, Any]:
    item = catalogue.get(namespace, repository, tag)
    assert item is not None, "a tag the catalogue listed is in the catalogue"
    return item


def _tag_marker(offset: int) -> str:
    """The opaque v3 tag marker of a page that starts at ``offset``."""
    return base64.urlsafe_b64encode(f"swr-tags:{offset}".encode()).decode().rstrip("=")


def _marker_offset(marker: str | None) -> int:
    """The offset inside a v3 tag marker; _BadQuery if it is not one of ours."""
    if not marker:
        return 0
    try:
        text = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _BadQuery("marker is invalid") from None
    prefix, _, number = text.partition(":")
    if prefix != "swr-tags" or not number.isdigit() or len(number) > 12:
        raise _BadQuery("marker is invalid")
    return int(number)


def listed_without_manifest(namespace: str, repository: str, tag: str) -> bool:
    """Whether a v3 page sends this tag without its manifest (a few, the same each time)."""
    key = f"{namespace}/{repository}:{tag}".encode()
    return zlib.crc32(key) % EMPTY_MANIFEST_ONE_IN == 0


@_refusals_answered
def list_repository_tags_v3(
    catalogue: Catalogue, namespace: str, repository: str, query: Mapping[str, str]
) -> Answer:
    """ListRepositoryTag (v3), ``GET /v3/manage/namespaces/{ns}/repos/{repo}/tags``."""
    _check_repository(catalogue, namespace, repository)
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    start = _marker_offset(query.get("marker"))
    names = _tag_items(catalogue, namespace, repository, query)
    with_manifest = query.get("with_manifest", "false").lower() == "true"
    page = names[start : start + limit]
    items = []
    for tag in page:
        item = _details(catalogue, namespace, repository, tag)
        if not with_manifest or listed_without_manifest(namespace, repository, tag):
            item["manifest"] = ""
        items.append(item)
    has_more = start + len(page) < len(names)
    marker = _tag_marker(start + len(page)) if has_more else ""
    return 200, {"tags": items, "nextMarker": marker, "has_more": has_more}, {}


def _matching_repositories(
    catalogue: Catalogue, filters: Mapping[str, str]
) -> Iterator[tuple[int, str, str]]:
    """(account-wide index, namespace, repository) of the repositories matching ``filters``."""
    wanted_ns = filters.get("namespace")
    name_part = filters.get("name")
    category = filters.get("category")
    per_namespace = catalogue.repos_per_namespace
    for i, namespace in enumerate(catalogue.namespaces()):
        if wanted_ns is not None and namespace != wanted_ns:
            continue
        for r, repository in enumerate(catalogue.repositories(namespace)):
            if name_part is not None and name_part not in repository:
                continue
            if category is not None:
                details = catalogue.repository_details(namespace, repository)
                if details is None or details["category"] != category:
                    continue
            yield i * per_namespace + r, namespace, repository


#: The repository details that both repository lists copy into their items.
_LISTED_DETAILS = (
    "category",
    "description",
    "size",
    "is_public",
    "num_images",
    "num_download",
    "created_at",
    "updated_at",
)


def _repo_details(catalogue: Catalogue, namespace: str, repository: str) -> dict[str, Any]:
    details = catalogue.repository_details(namespace, repository)
    assert details is not None, "a listed repository is in the catalogue"
    return details


@_refusals_answered
def list_repos_details_v2(catalogue: Catalogue, query: Mapping[str, str]) -> Answer:
    """ListReposDetails, ``GET /v2/manage/repos``: offset/limit, total in Content-Range."""
    offset = _int(query, "offset", 0, 0, 2**31)
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    filters = _filters(query)
    if filters.keys() & {"namespace", "name", "category"}:
        matching = [(ns, repo) for _, ns, repo in _matching_repositories(catalogue, filters)]
        total = len(matching)
        page = matching[offset : offset + limit]
    else:
        # No filter: index arithmetic, nothing materialised.
        total = catalogue.repository_count()
        page = [catalogue.repository_at(n) for n in range(offset, min(total, offset + limit))]
    items = []
    for namespace, repository in page:
        details = _repo_details(catalogue, namespace, repository)
        items.append(
            {
                "name": repository,
                **{key: details[key] for key in _LISTED_DETAILS},
                "url": "",
                "logo": "",
                "path": details["path"],
                "internal_path": details["internal_path"],
                "domain_name": catalogue.domain_name,
                "namespace": namespace,
                "tags": catalogue.tags(namespace, repository),
                "status": False,
                "total_range": total,
            }
        )
    return 200, items, _content_range(offset, len(items), total)


@_refusals_answered
def list_repo_details_v3(catalogue: Catalogue, query: Mapping[str, str]) -> Answer:
    """ListRepoDetails (v3), ``GET /v3/manage/repos``: marker is the last id seen (int)."""
    limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    marker = _int(query, "marker", 0, 0, 2**62)
    filters = _filters(query)
    is_public = query.get("is_public")
    items: list[dict[str, Any]] = []
    more = False
    for index, namespace, repository in _matching_repositories(catalogue, filters):
        if catalogue.repository_id(index) <= marker:
            continue  # cheap: ids follow the account-wide index
        details = _repo_details(catalogue, namespace, repository)
        if is_public is not None and str(details["is_public"]).lower() != is_public.lower():
            continue
        if len(items) == limit:
            more = True
            break
        items.append(
            {
                "id": details["id"],
                "name": repository,
                **{key: details[key] for key in _LISTED_DETAILS},
                "domain_name": catalogue.domain_name,
                "namespace_name": namespace,
                "status": False,
            }
        )
    next_marker = items[-1]["id"] if more else 0
    return 200, {"repos": items, "nextMarker": next_marker}, {}
