"""Stateless checks of a parsed request, before any transaction or dialog sees it.

Theory of operation: `sipmask.parse` rejects what is malformed (a `ParseError`, answered by
`responses.response_to_parse_error`); what parses can still be unacceptable for semantic
reasons (RFC 4475 §3.2-3.3). `check_request` gives that verdict as a ready response, or None
when the request may go on. The checks run in this order, merging the UAS order of RFC 3261
§8.2 with the request validation of §16.3 (sipmask forwards calls, so a Max-Forwards of zero
matters to it as to a proxy):

1. 505  the SIP-Version is not SIP/2.0 (§21.5.6; RFC 4475 §3.1.2.16).
2. 400  a mandatory header is missing (Via, From, To, Call-ID, CSeq; §8.1.1) or a single-value
        header is repeated (From, To, Call-ID, CSeq, Max-Forwards, Content-Length,
        Content-Type; §7.3.1, RFC 4475 §3.3.1 and §3.3.8).
3. 416  the Request-URI scheme is not served (§8.2.2.1, §16.3 step 2).
4. 483  Max-Forwards is 0 and the request would be forwarded (§16.3 step 3); OPTIONS addressed
        to sipmask itself is answered instead (§11), and CANCEL is always answered locally.
5. 501  unknown method, or 405 for a method sipmask knows but does not serve (§8.2.1); both
        carry Allow.
6. 420  Require lists option tags sipmask does not support, listed in Unsupported (§8.2.2.3).
        Proxy-Require is for proxies (§20.29): a B2BUA is a UAS on each leg and ignores it,
        unless `proxy_require=True`. Require is ignored in CANCEL (§8.2.2.3).
7. 415  a body of a type or encoding sipmask does not accept, with Accept or Accept-Encoding
        (§8.2.3), unless its Content-Disposition says `handling=optional` (§20.11).
8. 406  an INVITE or UPDATE whose Accept excludes every type sipmask answers with (§21.4.7,
        RFC 4475 §3.3.15; no Accept means application/sdp, §20.1).

An ACK is never answered: `check_request` returns None for every ACK, and
`acceptable_ack` says whether one is fit to be matched at all (else it is dropped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence

from .._core import URI, Request, Response, parse_uri
from ..errors import ParseError
from .responses import make_response

SIP_VERSION = "SIP/2.0"

# RFC 3261 §8.1.1: every request carries these (Max-Forwards is optional at a UAS, RFC 4475
# §3.4.1 accepts its absence).
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
# RFC 3261 §7.3.1 / §20: header fields that may appear once.
SINGLE_VALUE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type")

# Methods sipmask recognises: RFC 3261 and the extensions registered with IANA that a carrier
# may send. A method outside this set is unknown (501), inside it but not served, 405.
# RFC 3261; 3262 (PRACK); 6665 (SUBSCRIBE, NOTIFY); 3311 (UPDATE); 6086 (INFO); 3428 (MESSAGE);
# 3515 (REFER); 3903 (PUBLISH).
KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER PRACK SUBSCRIBE NOTIFY UPDATE INFO MESSAGE REFER "
    "PUBLISH".split()
)

DEFAULT_SCHEMES = ("sip", "sips", "tel")
DEFAULT_ENCODINGS = ("identity",)
DEFAULT_ANSWER_TYPES = ("application/sdp",)


def stateless_tag(request: Request) -> str:
    """A To tag that is the same for every retransmission of `request` (RFC 3261 §8.2.7: a
    stateless UAS generates tags consistently), from Call-ID, From tag, top Via branch and
    CSeq. Not random, so never use it for a dialog that lives on."""
    via = request.top_via
    key = "\x00".join(
        (
            request.call_id or "",
            request.from_tag or "",
            (via.branch or "") if via is not None else "",
            request.header("cseq") or "",
        )
    )
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def check_request(
    request: Request,
    *,
    methods: Collection[str],
    supported: Collection[str],
    accepted_types: Collection[str],
    schemes: Collection[str] = DEFAULT_SCHEMES,
    local_uris: Iterable[str | URI] | None = None,
    encodings: Collection[str] = DEFAULT_ENCODINGS,
    answer_types: Collection[str] = DEFAULT_ANSWER_TYPES,
    proxy_require: bool = False,
    to_tag: str | Callable[[Request], str] = stateless_tag,
) -> Response | None:
    """The stateless verdict on a parsed request (see the module docstring for the order).

    Args:
        request: the request as parsed.
        methods: methods sipmask serves (they go into Allow).
        supported: option tags sipmask supports (Require check; case-insensitive, §7.3.1).
        accepted_types: body media types sipmask accepts, lower case ('application/sdp').
        schemes: Request-URI schemes served.
        local_uris: URIs naming sipmask itself (for OPTIONS with Max-Forwards 0); None means
            every Request-URI is sipmask's own (see `addressed_to_us`).
        encodings: content codings accepted (Content-Encoding check).
        answer_types: media types sipmask answers INVITE/UPDATE with (Accept check).
        proxy_require: also reject unknown Proxy-Require tags (act as a proxy would).
        to_tag: the To tag of a response, or a function of the request giving it; called
            only when a response is made.

    Returns:
        The response to send, or None when the request may go on (always None for ACK).
    """
    if request.method == "ACK":
        return None
    verdict = _verdict(
        request,
        methods=methods,
        supported=supported,
        accepted_types=accepted_types,
        schemes=schemes,
        local_uris=local_uris,
        encodings=encodings,
        answer_types=answer_types,
        proxy_require=proxy_require,
    )
    if verdict is None:
        return None
    status, reason, headers = verdict
    tag = to_tag if isinstance(to_tag, str) else to_tag(request)
    try:
        return make_response(request, status, reason, to_tag=tag, headers=headers)
    except ValueError:
        # The To value cannot be rewritten with a tag (a quoted NUL, RFC 4475 §3.1.1.2):
        # answer without a To tag rather than let a bad request through.
        return make_response(request, status, reason, headers=headers)


_Verdict = tuple[int, str | None, list[tuple[str, str]]]


def _verdict(
    request: Request,
    *,
    methods: Collection[str],
    supported: Collection[str],
    accepted_types: Collection[str],
    schemes: Collection[str],
    local_uris: Iterable[str | URI] | None,
    encodings: Collection[str],
    answer_types: Collection[str],
    proxy_require: bool,
) -> _Verdict | None:
    # 1. RFC 3261 §21.5.6, RFC 4475 §3.1.2.16
    if request.version.upper() != SIP_VERSION:
        return 505, None, []
    # 2. RFC 3261 §8.1.1 (mandatory) and §7.3.1 (single-value); RFC 4475 §3.3.1, §3.3.8
    problem = header_problem(request)
    if problem is not None:
        return 400, f"Bad Request ({problem})", []
    # 3. RFC 3261 §8.2.2.1 / §16.3 step 2; RFC 4475 §3.3.2, §3.3.3
    uri = request.parsed_uri
    if uri.scheme not in schemes:
        return 416, None, []
    method = request.method
    # 4. RFC 3261 §16.3 step 3; RFC 4475 §3.3.11
    if request.max_forwards == 0 and method != "CANCEL":
        if method != "OPTIONS" or not addressed_to_us(request, local_uris):
            return 483, None, []
    # 5. RFC 3261 §8.2.1
    if method not in methods:
        allow = [("Allow", ", ".join(methods))]
        return (405 if method in KNOWN_METHODS else 501), None, allow
    # 6. RFC 3261 §8.2.2.3 (Require and Proxy-Require are ignored in CANCEL)
    if method != "CANCEL":
        names = ("require", "proxy-require") if proxy_require else ("require",)
        unsupported = unsupported_options(request, supported, names)
        if unsupported:
            return 420, None, [("Unsupported", ", ".join(unsupported))]
    # 7. RFC 3261 §8.2.3
    headers = _content_problem(request, accepted_types, encodings)
    if headers:
        return 415, None, headers
    # 8. RFC 3261 §21.4.7 / §20.1; RFC 4475 §3.3.15
    if method in ("INVITE", "UPDATE") and not accepts_any(request, answer_types):
        return 406, None, [("Accept", ", ".join(answer_types))]
    return None


def header_problem(request: Request) -> str | None:
    """Short text naming the first missing mandatory or repeated single-value header field,
    or None (RFC 3261 §8.1.1, §7.3.1)."""
    for name in MANDATORY:
        if request.count(name) == 0:
            return f"missing {name}"
    for name in SINGLE_VALUE:
        if request.count(name) > 1:
            return f"repeated {name}"
    return None


def acceptable_ack(request: Request) -> bool:
    """Whether an ACK can be matched to a transaction or dialog: SIP/2.0 with the mandatory
    header fields once each. A bad ACK is dropped silently (an ACK is never
    answered)."""
    return request.version.upper() == SIP_VERSION and header_problem(request) is None


def unsupported_options(
    request: Request, supported: Collection[str], names: Iterable[str] = ("require",)
) -> list[str]:
    """Option tags of the `names` header fields that are not in `supported`, in order,
    without repeats, as written (option tags are tokens: compared without case, §7.3.1)."""
    known = {tag.lower() for tag in supported}
    unknown: list[str] = []
    seen: set[str] = set()
    for name in names:
        for value in request.headers(name):
            tag = value.strip()
            if tag and tag.lower() not in known and tag.lower() not in seen:
                seen.add(tag.lower())
                unknown.append(tag)
    return unknown


def _content_problem(
    request: Request, accepted_types: Collection[str], encodings: Collection[str]
) -> list[tuple[str, str]]:
    """The headers of a 415 (Accept and/or Accept-Encoding), or [] when the body is fine."""
    if not request.body or _optional_body(request):
        return []
    headers: list[tuple[str, str]] = []
    media = request.content_type
    # A body without Content-Type is not described (§20.15); RFC 2543 peers send SDP that way
    # (RFC 4475 §3.4.1 has a Content-Type, so only a type that is named is judged).
    if media is not None and media not in {t.lower() for t in accepted_types}:
        headers.append(("Accept", ", ".join(accepted_types)))
    accepted = {e.lower() for e in encodings}
    for coding in request.headers("content-encoding"):
        if coding.strip().lower() not in accepted:
            headers.append(("Accept-Encoding", ", ".join(encodings)))
            break
    return headers


def _optional_body(request: Request) -> bool:
    """Content-Disposition with handling=optional: a body the UAS may ignore (§20.11)."""
    disposition = request.header("content-disposition")
    if disposition is None:
        return False
    params = [p.strip().lower().replace(" ", "") for p in disposition.split(";")[1:]]
    return "handling=optional" in params


def accepts_any(request: Request, types: Collection[str]) -> bool:
    """Whether the request's Accept admits one of `types` (media ranges with `*`; no Accept
    header field means application/sdp, RFC 3261 §20.1)."""
    if request.count("accept") == 0:
        return "application/sdp" in types
    wanted = [t.lower() for t in types]
    for value in request.headers("accept"):
        media_range = value.split(";", 1)[0].strip().lower()
        if _q_zero(value):
            continue
        for media in wanted:
            if media_range in ("*/*", media) or (
                media_range.endswith("/*") and media.startswith(media_range[:-1])
            ):
                return True
    return False


def _q_zero(value: str) -> bool:
    for param in value.split(";")[1:]:
        name, _, q = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(q.strip()) == 0.0
            except ValueError:
                return False
    return False


def addressed_to_us(request: Request, local_uris: Iterable[str | URI] | None) -> bool:
    """Whether the Request-URI names sipmask itself: same host (without case) and port (an
    absent port is 5060 for sip, 5061 for sips) as one of `local_uris`, whose user part, when
    it has one, must match too. None means every Request-URI is sipmask's (a B2BUA that
    answers each OPTIONS itself)."""
    if local_uris is None:
        return True
    target = request.parsed_uri
    if target.scheme not in ("sip", "sips") or target.host is None:
        return False
    for local in local_uris:
        try:
            uri = parse_uri(local) if isinstance(local, str) else local
        except ParseError:
            continue
        if uri.host is None or uri.host.lower() != target.host.lower():
            continue
        if _port(uri) != _port(target):
            continue
        if uri.user is not None and uri.user != target.user:
            continue
        return True
    return False


def _port(uri: URI) -> int:
    if uri.port is not None:
        return uri.port
    return 5061 if uri.scheme == "sips" else 5060


def options_response(
    request: Request,
    allow: Sequence[str],
    accept: Sequence[str],
    supported: Sequence[str],
    *,
    accept_encoding: Sequence[str] = DEFAULT_ENCODINGS,
    to_tag: str | Callable[[Request], str] = stateless_tag,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """200 to an OPTIONS addressed to sipmask (carrier keep-alives), with Allow, Accept,
    Accept-Encoding and Supported (RFC 3261 §11.2); `headers` are appended (a Contact...)."""
    lists = (
        ("Allow", allow),
        ("Accept", accept),
        ("Accept-Encoding", accept_encoding),
        ("Supported", supported),
    )
    # An empty list is left out rather than written as an empty header field.
    fields = [(name, ", ".join(values)) for name, values in lists if values]
    fields += headers
    tag = to_tag if isinstance(to_tag, str) else to_tag(request)
    return make_response(request, 200, to_tag=tag, headers=fields)


# What a sipmask endpoint serves until the B2BUA adds methods and option tags.
DEFAULT_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS")
DEFAULT_ACCEPT = ("application/sdp",)
DEFAULT_SUPPORTED: tuple[str, ...] = ()


def stateless_answer(
    request: Request,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    supported: Sequence[str] = DEFAULT_SUPPORTED,
    accepted_types: Sequence[str] = DEFAULT_ACCEPT,
) -> Response | None:
    """The answer an endpoint gives without any call state: the `check_request` verdict, or
    200 to an OPTIONS (carrier keep-alive); None when the request is the application's."""
    verdict = check_request(
        request, methods=methods, supported=supported, accepted_types=accepted_types
    )
    if verdict is not None:
        return verdict
    if request.method == "OPTIONS":
        return options_response(request, methods, accepted_types, supported)
    return None
