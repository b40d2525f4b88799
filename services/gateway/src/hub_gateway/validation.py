"""Reading and validating the request: body size, JSON, the pydantic model, currency, Idempotency-Key."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import orjson
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from hub_common.schemas import Text, TransactionRequest
from hub_gateway.errors import FieldProblem, InvalidRequestError, PayloadTooLargeError, UnsupportedCurrencyError

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"
_PRINTABLE_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# The body's id fields (refId, playerId, ...): the same rule for the ids a path carries.
_TEXT: TypeAdapter[str] = TypeAdapter(Text)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body (the signature covers it byte for byte), refused past `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(limit) from None


def idempotency_key(value: str | None) -> str:
    if value is None or not _PRINTABLE_KEY.match(value):
        raise InvalidRequestError(
            "Idempotency-Key header is required on POST",
            [FieldProblem(IDEMPOTENCY_HEADER, "required: 1-255 printable ASCII characters")],
        )
    return value


def path_text(value: str, field: str) -> str:
    """An id from the path (percent-decoded), held to the rule of the body field of that name: 1-128 printable
    ASCII characters without spaces. Anything else is a 400 naming the field, not a lookup or an operator call."""
    try:
        return _TEXT.validate_python(value)
    except ValidationError as exc:
        problems = [FieldProblem(field, err["msg"]) for err in exc.errors(include_input=False)]
        raise InvalidRequestError(f"path parameter {field} is not valid", problems) from None


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_transaction(body: bytes, supported_currencies: Sequence[str]) -> TransactionRequest:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError("request body is not valid JSON", [FieldProblem("body", str(exc))]) from None
    if not isinstance(raw, dict):
        raise InvalidRequestError("request body must be a JSON object", [FieldProblem("body", "not an object")])
    try:
        request = TransactionRequest.model_validate(raw)
    except ValidationError as exc:
        # include_input=False: a rejected field's value (possibly metadata) is not echoed back or logged.
        problems = [FieldProblem(_location(err["loc"]), err["msg"]) for err in exc.errors(include_input=False)]
        raise InvalidRequestError("request body does not match the transaction schema", problems) from None
    if request.currency not in supported_currencies:
        raise UnsupportedCurrencyError(request.currency, list(supported_currencies))
    return request


def request_hash(request: TransactionRequest) -> str:
    """sha256 of the canonical JSON (sorted keys, defaults filled in): equal requests hash equal."""
    return hashlib.sha256(orjson.dumps(request.to_wire(), option=orjson.OPT_SORT_KEYS)).hexdigest()
