# cython: language_level=3
"""sipmask's hot path: parse, inspect, rewrite and serialise SIP messages (RFC 3261) and SDP.

The contract is `_core.pyi`. This module does no I/O, no logging and keeps no global state
besides constant tables built at import (and the fmtp memo of `_sdp.pxi`, a pure cache).
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove, memset

import os

from .errors import ParseError

DEFAULT_MAX_SIZE = 65535
DEFAULT_MAX_HEADERS = 256

include "_syntax.pxi"
include "_headers.pxi"
include "_types.pxi"
include "_message.pxi"
include "_framer.pxi"
include "_sdp.pxi"
