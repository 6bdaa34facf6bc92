"""Cursor pagination: ``?limit=&cursor=``, answered as ``{"items": [...], "next": URL | null}``.

A cursor is the opaque (URL-safe base64 JSON) key of the last item of the page; the next page
starts strictly after it, so items added meanwhile never repeat or shift what is left. Large
collections (runs, audit events) pass the key down to the facade's query; small ones (models,
tokens, rules ...) are cut from the facade's full, ordered list by the same key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel

from modelcycle.errors import InvalidInput

__all__ = [
    "MAX_LIMIT",
    "Cursor",
    "Limit",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "page_of",
    "paged",
]

T = TypeVar("T")
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="The `next` cursor of the previous page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next`` is the URL of the following page (null on the last)."""

    items: list[T]
    next: str | None


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, *, arity: int) -> list[Any] | None:
    """The key a cursor carries, or None for the first page; InvalidInput if it is not ours."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(k, str | int | float) and not isinstance(k, bool) for k in key)
    ):
        raise InvalidInput("is not a cursor this API gave out", field="cursor")
    return key


def paged(
    request: Request,
    response: Response,
    items: list[T],
    limit: int,
    key: Callable[[T], Sequence[Any]],
) -> Page[T]:
    """The page for ``items`` (fetched with ``limit + 1``: one more tells a next page exists)."""
    if len(items) <= limit:
        return Page(items=items, next=None)
    items = items[:limit]
    url = str(request.url.include_query_params(cursor=encode_cursor(key(items[-1])), limit=limit))
    response.headers["Link"] = f'<{url}>; rel="next"'
    return Page(items=items, next=url)


def page_of(
    request: Request,
    response: Response,
    items: Sequence[T],
    limit: int,
    cursor: str | None,
    key: Callable[[T], Sequence[Any]],
    *,
    descending: bool = False,
) -> Page[T]:
    """A page cut from a whole list already sorted by ``key`` (ascending unless ``descending``)."""
    start = 0
    after = decode_cursor(cursor, arity=len(key(items[0])) if items else 1)
    if after is not None:
        marker = tuple(after)
        start = len(items)
        try:
            for i, item in enumerate(items):
                here = tuple(key(item))
                if (here < marker) if descending else (here > marker):
                    start = i
                    break
        except TypeError:
            raise InvalidInput("is not a cursor of this list", field="cursor") from None
    return paged(request, response, list(items[start : start + limit + 1]), limit, key)
