"""Exceptions of sipmask's core (pure Python, so they pickle and type-check without the
extension, as httptools keeps `errors.py` beside its parser)."""

from __future__ import annotations


class SipError(Exception):
    """Base class of sipmask's SIP errors."""


class ParseError(SipError, ValueError):
    """A message, header or body that cannot be parsed.

    Attributes:
        reason: short text for a log line or a 400's reason phrase (never the raw input).
        status_code: the response that fits: 400 unless another does (513 for a message over
            the size limit, 501 for an unknown method).
        method: the request method if the start line could be read, else None (a response or
            an unreadable line: no answer can be formed).
        via, from_, to, call_id, cseq: raw values salvaged from the message, enough for the
            SIP layer to answer with a 400 (RFC 3261 §8.2.6.2 copies these into a response).
    """

    status_code: int = 400

    def __init__(
        self,
        reason: str,
        status_code: int = 400,
        *,
        method: str | None = None,
        via: tuple[str, ...] = (),
        from_: str | None = None,
        to: str | None = None,
        call_id: str | None = None,
        cseq: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.method = method
        self.via = via
        self.from_ = from_
        self.to = to
        self.call_id = call_id
        self.cseq = cseq

    @property
    def can_respond(self) -> bool:
        """Whether a response can be formed: a request (not ACK) with the headers a response
        copies (RFC 3261 §8.2.6.2)."""
        return (
            self.method is not None
            and self.method != "ACK"
            and bool(self.via)
            and None not in (self.from_, self.to, self.call_id, self.cseq)
        )


class LocalProtocolError(SipError):
    """Misuse of sipmask's SIP API by the code calling it (a bug on our side)."""
