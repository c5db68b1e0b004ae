# Stream framing for TCP/TLS (RFC 3261 §18.3): a message ends Content-Length octets after
# the empty line that ends its header section; CRLFs between messages are keep-alives
# (RFC 5626 §4.4.1: a CRLFCRLF ping, answered with a CRLF pong).

cdef long long _stream_content_length(const uchar* p, Py_ssize_t hend) except -2:
    """Content-Length of the header section p[0:hend]; -1 when absent. Raises ParseError
    when it is malformed or given twice with different values."""
    cdef Py_ssize_t i = 0, j, s
    cdef long long v, found = -1
    while i < hend:
        # i is at the start of a line; folded continuation lines start with SP/HTAB.
        if not _is_ws(p[i]):
            j = _token(p, i, hend)
            if (j - i == 14 and _casecmp(p + i, <const uchar*>b"content-length", 14)) or (
                    j - i == 1 and LOWER[p[i]] == 108):
                while j < hend and _is_ws(p[j]):
                    j += 1
                if j < hend and p[j] == 58:
                    j += 1
                    while j < hend and _is_ws(p[j]):
                        j += 1
                    s = j
                    while j < hend and 48 <= p[j] <= 57:
                        j += 1
                    if not _number(p, s, j, 1 << 40, &v):
                        raise ParseError("malformed Content-Length")
                    while j < hend and _is_ws(p[j]):
                        j += 1
                    if j < hend and p[j] != 13 and p[j] != 10:
                        raise ParseError("malformed Content-Length")
                    if found >= 0 and v != found:
                        raise ParseError("conflicting Content-Length values")
                    found = v
        while i < hend and p[i] != 10:
            i += 1
        i += 1
    return found


cdef class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages (see `_core.pyi`)."""

    cdef bytearray _buf
    cdef Py_ssize_t _max
    cdef Py_ssize_t _searched    # bytes already searched for the end of the header section
    cdef Py_ssize_t _keepalives
    cdef Py_ssize_t _hend        # end of the current message's header section, 0 if unknown
    cdef long long _clen

    def __init__(self, Py_ssize_t max_size=DEFAULT_MAX_SIZE):
        self._buf = bytearray()
        self._max = max_size
        self._searched = 0
        self._keepalives = 0
        self._hend = 0
        self._clen = 0

    @property
    def buffered(self):
        return len(self._buf)

    @property
    def keepalives(self):
        return self._keepalives

    def feed(self, data):
        """Append `data`; return every message now complete, in order."""
        cdef list out = []
        cdef Py_ssize_t hend, total, n
        cdef const uchar* p
        self._buf += data
        while True:
            n = len(self._buf)
            if self._hend == 0:
                # Skip CRLFs between messages, counting CRLFCRLF pings; wait on a partial
                # one so a ping cut in two is still seen as one.
                while n and (self._buf[0] == 13 or self._buf[0] == 10):
                    if self._buf.startswith(b"\r\n\r\n"):
                        self._keepalives += 1
                        del self._buf[:4]
                    elif n < 4 and b"\r\n\r\n".startswith(self._buf):
                        return out
                    else:
                        del self._buf[:2 if self._buf.startswith(b"\r\n") else 1]
                    n = len(self._buf)
                    self._searched = 0
                if n == 0:
                    return out
                hend = self._buf.find(b"\r\n\r\n", max(0, self._searched - 3))
                if hend < 0:
                    self._searched = n
                    if n > self._max:
                        raise ParseError("message too large", 513)
                    return out
                hend += 4
                p = <const uchar*>PyByteArray_AS_STRING(self._buf)
                self._clen = _stream_content_length(p, hend)
                if self._clen < 0:
                    raise ParseError("no Content-Length on a stream transport")
                if hend + self._clen > self._max:
                    raise ParseError("message too large", 513)
                self._hend = hend
            total = self._hend + self._clen
            if n < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
            self._hend = 0
            self._searched = 0
