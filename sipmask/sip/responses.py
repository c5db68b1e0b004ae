"""Building responses to requests (RFC 3261 §8.2.6), shared by the SIP layer's parts."""

from __future__ import annotations

from collections.abc import Iterable

from .._core import Request, Response, parse
from ..errors import ParseError

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

# RFC 3261 §8.2.6.2: a response copies these from its request, in the request's order.
COPIED = ("Via", "From", "To", "Call-ID", "CSeq")
_COPIED_NAMES = {
    **{name.lower(): name for name in COPIED},
    "v": "Via", "f": "From", "t": "To", "i": "Call-ID",  # RFC 3261 §7.3.3 compact forms
}

# What a built header value may not hold (it would inject a field or end the header section):
# the core refuses it. A parsed request can still carry one in a To display name or a Require
# tag (a bare CR in an LF-only message, a NUL in a quoted string), so echoed values are
# escaped before they are written back; a response can then always be formed.
_UNSAFE = str.maketrans({"\r": "%0D", "\n": "%0A", "\x00": "%00"})


def safe_value(value: str) -> str:
    """`value` with CR, LF and NUL percent-escaped (RFC 3261 §25.1 allows `%` in tokens and
    quoted strings alike), so that it can be written into a header field."""
    if "\r" in value or "\n" in value or "\x00" in value:
        return value.translate(_UNSAFE)
    return value


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to `request`: Via, From, To, Call-ID and CSeq copied (wire bytes kept),
    a To tag added when the request has none and `to_tag` is given (§8.2.6.2; a 100 Trying
    carries none), then `headers` and `body`.

    Never fails for a parsed request: a To rewritten with its tag and every value of
    `headers` are written through `safe_value` (CR, LF and NUL escaped), so an echoed value
    (a display name, an option tag in Unsupported) cannot make the response unwritable."""
    reason = reason if reason is not None else REASONS.get(status, "")
    response = Response(status, safe_value(reason))
    try:
        response.copy_headers(request, COPIED)
    except ValueError:  # a copied value that cannot be written back as it is
        response = Response(response.status, response.reason)
        for name, value in request.header_items():
            if _COPIED_NAMES.get(name.lower()) is not None:
                response.add_header(name, safe_value(value))
    if to_tag is not None and request.to_tag is None:
        to = request.header("to")
        if to is not None:
            response.set_header("To", f"{safe_value(to)};tag={safe_value(to_tag)}")
    for name, value in headers:
        response.add_header(name, safe_value(value))
    if body:
        response.body = body
    return response


def response_to_parse_error(error: ParseError, *, to_tag: str) -> Response | None:
    """The answer to a malformed request (status and reason from `error`), built from what the
    parser salvaged; None when no response can be formed (a response, an ACK, or the headers a
    response copies are missing)."""
    if not error.can_respond:
        return None
    assert error.from_ is not None and error.to is not None
    assert error.call_id is not None and error.cseq is not None
    to = error.to if ";tag=" in error.to.replace(" ", "").lower() else f"{error.to};tag={to_tag}"
    fields = [("Via", via) for via in error.via]
    fields += [("From", error.from_), ("To", to), ("Call-ID", error.call_id), ("CSeq", error.cseq)]
    try:
        response = Response(error.status_code, _short_reason(error), fields)
        # When a copied field is what was malformed, the answer would be malformed too.
        parse(bytes(response))
    except ValueError:  # ParseError, or a salvaged value that cannot be written back
        return None
    return response


def _short_reason(error: ParseError) -> str:
    """The standard phrase, then the parser's short reason (never message content)."""
    standard = REASONS.get(error.status_code, "Bad Request")
    return f"{standard} ({error.reason})"
