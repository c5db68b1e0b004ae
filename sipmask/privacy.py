"""Privacy by default: real numbers never reach logs, metrics or errors in full.

Masking goes by field type, not by a regex over a whole line (issue 11):

- a value that may hold a number (free text: an exception, a participant, a path) has every
  number-like run masked, in every written form: digits with visual separators
  (`+91-98765-43210`, `(98765) 43210`, `98765.43210`), percent-encoded (`%2B91%2098765...`,
  `%39%38...`), national or international, with or without `+`/`00`; seven digits or more
  make a number (an IPv4 address is not one);
- ids (call ids, session ids, tags) are never masked, so log lines join to call records;
- counts, durations, ports and statuses (ints and floats) are shown as they are.

`masked_record` applies this to a log record: each argument of the message by its type, each
`extra={"fields": ...}` entry by its name. Operators can opt in to full numbers (`[logging]
show_numbers`), in which case nothing here runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

__all__ = [
    "ID_FIELDS",
    "LogId",
    "mask_number",
    "mask_numbers_in",
    "mask_party",
    "mask_structure",
    "mask_value",
    "masked_record",
]


def mask_number(number: str, *, keep_head: int = 3, keep_tail: int = 4) -> str:
    """Hide the middle of a phone number: '+919876543210' -> '+91******3210'.

    Numbers too short to keep both ends are hidden but for their last two digits.
    """
    if len(number) <= keep_head + keep_tail:
        return "*" * max(len(number) - 2, 0) + number[-2:]
    return number[:keep_head] + "*" * (len(number) - keep_head - keep_tail) + number[-keep_tail:]


# One digit, plain or percent-encoded (%30-%39), and a visual separator between digits:
# space, - . ( ) /, plain or percent-encoded (%20 %2D %2E %28 %29 %2F). A number is 7 digits
# or more, with at most two separators between two digits, after an optional + (%2B).
_DIGIT = r"(?:[0-9]|%3[0-9])"
_SEPARATOR = r"(?:[-. ()/]|%2[0DEdeFf8-9])"
_NUMBER = re.compile(rf"(?:\+|%2[Bb])?{_DIGIT}(?:{_SEPARATOR}{{0,2}}{_DIGIT}){{6,}}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1?[0-9]{1,2})"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _masked(match: re.Match[str]) -> str:
    text = match.group()
    if _IPV4.fullmatch(text):
        return text  # an address, not a number
    # Only a country code is shown at the head (`+91`); a national form shows its tail only.
    head = 3 if text[0] == "+" else 5 if text[0] == "%" and text[1:3] in ("2B", "2b") else 0
    return mask_number(text, keep_head=head)


def mask_numbers_in(text: str) -> str:
    """Mask every phone-number-like run inside free `text`, in every written form (see the
    module docstring)."""
    return _NUMBER.sub(_masked, text)


def mask_party(key: str) -> str:
    """Mask a participant key for logs: a number as `mask_number` does, a SIP key
    `alice@example.com` as `a****@example.com` (the host names a carrier or a PBX, not a
    person)."""
    user, at, host = key.partition("@")
    if not at:
        return mask_number(key)
    if user.lstrip("+").isdigit():
        return f"{mask_number(user)}@{host}"
    return f"{user[:1]}{'*' * max(len(user) - 1, 1)}@{host}"


class LogId(str):
    """A log argument that is an id (never masked): `log.info("call %s", LogId(call_id))`."""

    __slots__ = ()


ID_FIELDS = frozenset({
    "call_id", "session_id", "id", "interaction_id", "leg_call_id", "tag", "branch", "event",
    "request_id",
})
"""Names of structured log fields that hold ids: shown whole."""
# sipmask's own ids, which a peer cannot choose: call ids (12 hex digits), tags (16), Call-IDs
# of the legs it builds (32), session ids (`<pool>.<22 base64url characters>`). A string
# without a letter is not taken for an id: it may be a number.
_OWN_ID = re.compile(
    r"(?=[0-9a-f]*[a-f])(?:[0-9a-f]{12}|[0-9a-f]{16}|[0-9a-f]{32})"
    r"|[A-Za-z0-9_-]{1,64}\.(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{22}"
)


def mask_value(value: object, ids: frozenset[object] = frozenset()) -> object:
    """One log argument masked by its type: ids (a `LogId`, one of `ids`, or the shape of
    sipmask's own ids) whole, numbers (int, float, bool) as they are, anything else as
    free text with its numbers masked."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, LogId):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if text in ids or _OWN_ID.fullmatch(text):
        return text
    return mask_numbers_in(text)


def mask_structure(value: object, ids: frozenset[object] = frozenset()) -> object:
    """A decoded JSON document (an API answer, a call record) masked by field: the values of
    id fields (`ID_FIELDS`; not any `*_id`: `caller_id` names a number) whole, every other
    string as `mask_value` does, recursively. For printing whole documents without mangling
    ids."""
    if isinstance(value, Mapping):
        return {
            key: item if key in ID_FIELDS and not isinstance(item, (Mapping, list))
            else mask_structure(item, ids)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_structure(item, ids) for item in value]
    return mask_value(value, ids)


_EXCEPTIONS = logging.Formatter()


def masked_record(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` whose message, structured fields and traceback have their
    numbers masked by field type (see the module docstring)."""
    copy = logging.makeLogRecord(record.__dict__)
    fields = getattr(record, "fields", None)
    ids: frozenset[object] = frozenset()
    if isinstance(fields, dict):
        ids = frozenset(v for k, v in fields.items() if k in ID_FIELDS and isinstance(v, str))
        copy.fields = {
            key: value if key in ID_FIELDS else mask_value(value, ids)
            for key, value in fields.items()
        }
    args = record.args
    try:
        if isinstance(args, Mapping):
            message = str(record.msg) % {k: mask_value(v, ids) for k, v in args.items()}
        elif args:
            message = str(record.msg) % tuple(mask_value(v, ids) for v in args)
        else:
            message = mask_numbers_in(str(record.msg))  # a message without arguments: text
    except (TypeError, ValueError):  # a bad format string: the template and its arguments
        message = mask_numbers_in(f"{record.msg!s} {args!r}")
    copy.msg, copy.args = message, None
    if record.exc_info:
        copy.exc_text = mask_numbers_in(record.exc_text or _EXCEPTIONS.formatException(
            record.exc_info))
        copy.exc_info = None
    elif record.exc_text:
        copy.exc_text = mask_numbers_in(record.exc_text)
    if record.stack_info:
        copy.stack_info = mask_numbers_in(record.stack_info)
    return copy
