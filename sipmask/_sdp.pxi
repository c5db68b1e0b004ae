# SDP (RFC 4566) parsing and the allow-list rebuild that keeps real numbers out of bodies, plus
# multipart bodies (RFC 2046) to find the SDP part of a SIP-I message.

DEFAULT_SDP_ATTRIBUTES = frozenset({
    "rtpmap", "fmtp", "ptime", "maxptime", "sendrecv", "sendonly", "recvonly", "inactive",
    "rtcp", "rtcp-mux", "rtcp-fb", "silencesupp", "crypto", "fingerprint", "setup",
    "connection", "framerate",
})


cdef class MediaDescription:
    cdef public str media
    cdef public int port
    cdef public object port_count
    cdef public str proto
    cdef public list formats
    cdef public str connection
    cdef public list bandwidths
    cdef public list attributes

    def __repr__(self):
        return "<MediaDescription %s %d %s %s>" % (self.media, self.port, self.proto,
                                                   " ".join(self.formats))


cdef class SessionDescription:
    cdef public str origin
    cdef public str session_name
    cdef public str connection
    cdef public list bandwidths
    cdef public list times
    cdef public list attributes
    cdef public list media

    def __repr__(self):
        return "<SessionDescription %d media>" % len(self.media)


cdef list _sdp_lines(bytes body):
    """The lines of an SDP body as (type, value) with value as bytes; ParseError if it is
    not SDP (RFC 4566 §5: `<type>=<value>`, v= first)."""
    cdef list out = []
    cdef bytes line
    for line in body.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        if len(line) < 2 or line[1] != 61 or not (97 <= line[0] <= 122):
            raise ParseError("malformed SDP line")
        out.append((line[0], line[2:]))
    if not out or out[0][0] != 118 or out[0][1] != b"0":  # "v=0"
        raise ParseError("SDP does not start with v=0")
    return out


cdef tuple _attribute(bytes value):
    cdef Py_ssize_t colon = value.find(b":")
    if colon < 0:
        return (value.decode("utf-8", "surrogateescape"), None)
    return (value[:colon].decode("utf-8", "surrogateescape"),
            value[colon + 1:].decode("utf-8", "surrogateescape"))


cdef MediaDescription _media_line(bytes value):
    """m=<media> <port>[/<count>] <proto> <fmt> ..."""
    cdef list parts = value.split(b" ")
    cdef MediaDescription m = MediaDescription.__new__(MediaDescription)
    cdef bytes port
    if len(parts) < 4 or not parts[0] or not parts[2]:
        raise ParseError("malformed m= line")
    port, _, count = parts[1].partition(b"/")
    if not port.isdigit() or int(port) > 65535 or (count and not count.isdigit()):
        raise ParseError("malformed m= port")
    m.media = parts[0].decode("ascii", "surrogateescape")
    m.port = int(port)
    m.port_count = int(count) if count else None
    m.proto = parts[2].decode("ascii", "surrogateescape")
    m.formats = [f.decode("ascii", "surrogateescape") for f in parts[3:] if f]
    m.connection = None
    m.bandwidths = []
    m.attributes = []
    return m


def parse_sdp(bytes body not None):
    """Parse an SDP body. Raises ParseError."""
    cdef SessionDescription sd = SessionDescription.__new__(SessionDescription)
    cdef MediaDescription m = None
    cdef int kind
    cdef bytes value
    sd.origin = sd.session_name = sd.connection = None
    sd.bandwidths, sd.times, sd.attributes, sd.media = [], [], [], []
    for kind, value in _sdp_lines(body):
        text = value.decode("utf-8", "surrogateescape")
        if kind == 109:  # m
            m = _media_line(value)
            sd.media.append(m)
        elif kind == 97:  # a
            (sd.attributes if m is None else m.attributes).append(_attribute(value))
        elif kind == 99:  # c
            if m is None:
                sd.connection = text
            else:
                m.connection = text
        elif kind == 98:  # b
            (sd.bandwidths if m is None else m.bandwidths).append(text)
        elif kind == 111 and m is None:  # o
            sd.origin = text
        elif kind == 115 and m is None:  # s
            sd.session_name = text
        elif kind == 116 and m is None:  # t
            sd.times.append(text)
    if sd.origin is None:
        raise ParseError("SDP without o= line")
    return sd


# --- the allow-list rebuild (hot path: once per offer/answer per leg) -----------------------

_SDP_PROTOS = frozenset({
    "rtp/avp", "rtp/savp", "rtp/avpf", "rtp/savpf", "udp/tls/rtp/savp", "udp/tls/rtp/savpf",
    "tcp/rtp/avp", "udptl", "udp", "tcp", "tcp/msrp", "tcp/tls/msrp", "tcp/tls", "tcp/bfcp",
    "tcp/tls/bfcp", "udp/bfcp",
})

cdef enum:
    # A run this long of digits is a phone number, never an SDP value worth keeping.
    NUMBER_RUN = 7


cdef struct Out:
    char* buf
    Py_ssize_t n
    Py_ssize_t cap


cdef int _put(Out* o, const void* src, Py_ssize_t k) except -1:
    cdef char* grown
    cdef Py_ssize_t cap
    if o.n + k > o.cap:
        cap = max(o.cap * 2, o.n + k + 256)
        grown = <char*>realloc(o.buf, cap)
        if grown == NULL:
            raise MemoryError()
        o.buf = grown
        o.cap = cap
    memcpy(o.buf + o.n, src, k)
    o.n += k
    return 0


cdef inline int _put_line(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e) except -1:
    _put(o, p + s, e - s)
    _put(o, b"\r\n", 2)
    return 0


cdef int _digit_run(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Length of the longest run of digits in p[s:e]."""
    cdef int run = 0, best = 0
    cdef Py_ssize_t k
    for k in range(s, e):
        if 48 <= p[k] <= 57:
            run += 1
            if run > best:
                best = run
        else:
            run = 0
    return best


cdef bint _ip_literal(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """An IPv4/IPv6 literal, optionally with /ttl: c= lines must not carry free text."""
    cdef Py_ssize_t k
    if s >= e:
        return False
    for k in range(s, e):
        if not (HEXVAL[p[k]] >= 0 or p[k] == 46 or p[k] == 58 or p[k] == 47):
            return False
    return True


cdef Py_ssize_t _c_address(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Start of the address in a c= value `IN IP4 <addr>` / `IN IP6 <addr>`, or -1."""
    if (e - s < 8 or p[s] != 73 or p[s + 1] != 78 or p[s + 2] != 32 or p[s + 3] != 73
            or p[s + 4] != 80 or (p[s + 5] != 52 and p[s + 5] != 54) or p[s + 6] != 32):
        return -1
    return s + 7


cdef bint _bandwidth_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """b=<bwtype>:<bandwidth> with a bandwidth of at most 6 digits (10 Gbit/s in kbit/s)."""
    cdef Py_ssize_t k = s
    while k < e and ((CLS[p[k]] & C_ALNUM) or p[k] == 45):
        k += 1
    if k == s or k >= e or p[k] != 58 or e - (k + 1) > 6 or e == k + 1:
        return False
    for k in range(k + 1, e):
        if not 48 <= p[k] <= 57:
            return False
    return True


cdef bint _format_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """An m= format: an RTP payload type (0-127) or a short token such as `t38`."""
    cdef Py_ssize_t k
    cdef int digits = 0
    cdef long long v
    if e - s > 32 or s >= e:
        return False
    for k in range(s, e):
        if not (CLS[p[k]] & C_TOKEN):
            return False
        if 48 <= p[k] <= 57:
            digits += 1
    if digits == e - s:
        return _number(p, s, e, 127, &v)
    return digits <= 3


cdef int _media(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e, object media_ports,
                int index) except -1:
    """Check an m= line's value and write it, with its port replaced when asked."""
    cdef Py_ssize_t a, b, c, k, f
    cdef long long port, count
    cdef bytes fresh
    a = _token(p, s, e)
    if a == s or a >= e or p[a] != 32:
        raise ParseError("malformed m= line")
    b = a + 1
    k = b
    while k < e and 48 <= p[k] <= 57:
        k += 1
    if not _number(p, b, k, 65535, &port):
        raise ParseError("malformed m= port")
    c = k
    if c < e and p[c] == 47:  # /<number of ports>
        k = c + 1
        while k < e and 48 <= p[k] <= 57:
            k += 1
        if not _number(p, c + 1, k, 65535, &count):
            raise ParseError("malformed m= port")
    if k >= e or p[k] != 32:
        raise ParseError("malformed m= line")
    f = k + 1
    k = f
    while k < e and p[k] != 32:
        k += 1
    if _decode(p, f, k).lower() not in _SDP_PROTOS:
        raise ParseError("unsupported m= protocol")
    while k < e:
        f = k + 1
        k = f
        while k < e and p[k] != 32:
            k += 1
        if not _format_ok(p, f, k):
            raise ParseError("malformed m= format")
    _put(o, b"m=", 2)
    _put(o, p + s, b - s)
    if media_ports is not None and port != 0:  # port 0 is a rejected stream (RFC 3264 §6)
        if index >= len(media_ports):
            raise ValueError("media_ports has no port for m= line %d" % (index + 1))
        fresh = b"%d" % media_ports[index]
        _put(o, PyBytes_AS_STRING(fresh), len(fresh))
        _put_line(o, p, c, e)
    else:
        _put_line(o, p, b, e)
    return 0


cdef bytes _rebuild_rest(bytes body, str connection_address, object media_ports,
                         frozenset attributes):
    """The rebuilt SDP after its o= line: s=-, then c= b= t= m= and the allowed a= lines.
    v o s are rebuilt, t= is always `0 0` (RFC 3264 §5), and i u e p k z r, unknown lines,
    attributes off the list and any value holding a phone-number-like digit run are dropped."""
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t i = 0, e, le, vs, ne, k
    cdef const uchar* nl
    cdef int line_no = 0, media_index = -1
    cdef bint t_written = False
    cdef uchar kind
    cdef char name[32]
    cdef bytes conn = None
    cdef Out o
    if connection_address is not None:
        conn = b"c=" + _addr_type(connection_address) + b" " + connection_address.encode(
            "ascii") + b"\r\n"
    o.buf = NULL
    o.n = o.cap = 0
    try:
        _put(&o, b"s=-\r\n", 5)
        while i < n:
            nl = <const uchar*>memchr(p + i, 10, n - i)
            le = n if nl == NULL else nl - p
            e = le - 1 if le > i and p[le - 1] == 13 else le
            if e > i:
                if e - i < 2 or p[i + 1] != 61 or not 97 <= p[i] <= 122:
                    raise ParseError("malformed SDP line")
                kind = p[i]
                vs = i + 2
                if line_no == 0 and not (kind == 118 and e - vs == 1 and p[vs] == 48):
                    raise ParseError("SDP does not start with v=0")
                if (kind == 109 or (kind == 97 and media_index < 0)) and not t_written:
                    _put(&o, b"t=0 0\r\n", 7)
                    t_written = True
                if kind == 109:  # m
                    media_index += 1
                    _media(&o, p, vs, e, media_ports, media_index)
                elif kind == 99:  # c
                    k = _c_address(p, vs, e)
                    if k < 0:
                        raise ParseError("malformed c= line")
                    if conn is not None:
                        _put(&o, PyBytes_AS_STRING(conn), len(conn))
                    elif _ip_literal(p, k, e):
                        _put_line(&o, p, i, e)
                    else:
                        raise ParseError("c= address is not an IP literal")
                elif kind == 98:  # b
                    if _bandwidth_ok(p, vs, e):
                        _put_line(&o, p, i, e)
                elif kind == 97:  # a
                    ne = vs
                    while ne < e and p[ne] != 58 and ne - vs < 31:
                        name[ne - vs] = LOWER[p[ne]]
                        ne += 1
                    if ((ne == e or p[ne] == 58)
                            and PyUnicode_DecodeASCII(name, ne - vs, "replace") in attributes
                            and _digit_run(p, vs, e) < NUMBER_RUN):
                        _put_line(&o, p, i, e)
                elif kind == 118 and line_no != 0:
                    raise ParseError("second v= line in SDP")
                line_no += 1
            i = le + 1
        if line_no == 0:
            raise ParseError("empty SDP")
        if not t_written:
            _put(&o, b"t=0 0\r\n", 7)
        return PyBytes_FromStringAndSize(o.buf, o.n)
    finally:
        free(o.buf)


cdef inline bytes _addr_type(str address):
    return b"IN IP6" if ":" in address else b"IN IP4"


cdef bytes _origin_line(str address, long long session_id, long long version):
    return b"v=0\r\no=- %d %d %s %s\r\n" % (session_id, version, _addr_type(address),
                                              address.encode("ascii"))


def rebuild_sdp(bytes body not None, *, str origin_address not None, long long session_id,
                long long version, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
    """Rebuild an SDP body through the allow-list (see `_core.pyi`). Raises ParseError."""
    return _origin_line(origin_address, session_id, version) + _rebuild_rest(
        body, connection_address, media_ports, attributes)


cdef class SdpOrigin:
    """The o= state of one leg (RFC 3264 §8): fixed session id, version bumped on change."""

    cdef public long long session_id
    cdef public long long version
    cdef str _address
    cdef bytes _last
    cdef bytes _origin       # the v= and o= lines for the current version

    def __init__(self, str address not None, session_id=None):
        self._address = address
        self.session_id = (int.from_bytes(os.urandom(4), "big") & 0x7fffffff
                           if session_id is None else session_id)
        self.version = 0
        self._last = None
        self._origin = None

    def rebuild(self, bytes body not None, *, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
        cdef bytes rest = _rebuild_rest(body, connection_address, media_ports, attributes)
        if self._last is not None and rest != self._last:
            self.version += 1
            self._origin = None
        self._last = rest
        if self._origin is None:
            self._origin = _origin_line(self._address, self.session_id, self.version)
        return self._origin + rest


# --- multipart (RFC 2046 §5.1) ---------------------------------------------------------------

cdef class BodyPart:
    cdef public list headers
    cdef public bytes body

    @property
    def content_type(self):
        for name, value in self.headers:
            if name.lower() in ("content-type", "c"):
                return value.split(";", 1)[0].strip().lower()
        return None

    def __repr__(self):
        return "<BodyPart %s %d bytes>" % (self.content_type, len(self.body))


cdef str _boundary(str content_type):
    cdef str param, name, value
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            if value:
                return value
    raise ParseError("multipart body without a boundary")


def split_multipart(str content_type not None, bytes body not None):
    """Split a multipart/* body into its parts. Raises ParseError."""
    cdef bytes delimiter = b"--" + _boundary(content_type).encode("utf-8", "surrogateescape")
    cdef list parts = []
    cdef Py_ssize_t pos, start, nxt, hend
    cdef BodyPart part
    cdef bytes chunk, head
    # The first delimiter may open the body or follow a preamble after a CRLF.
    if body.startswith(delimiter):
        pos = 0
    else:
        pos = body.find(b"\r\n" + delimiter)
        if pos < 0:
            raise ParseError("multipart body without its boundary")
        pos += 2
    while True:
        start = pos + len(delimiter)
        if body[start:start + 2] == b"--":
            return parts  # close delimiter
        nxt = body.find(b"\r\n" + delimiter, start)
        if nxt < 0:
            raise ParseError("multipart body without a closing boundary")
        eol = body.find(b"\r\n", start)
        chunk = body[eol + 2:nxt]
        hend = chunk.find(b"\r\n\r\n")
        if chunk.startswith(b"\r\n"):
            head, chunk = b"", chunk[2:]
        elif hend >= 0:
            head, chunk = chunk[:hend], chunk[hend + 4:]
        else:
            raise ParseError("multipart part without a header section")
        part = BodyPart.__new__(BodyPart)
        part.headers = []
        for line in (head.split(b"\r\n") if head else ()):
            name, colon, value = line.partition(b":")
            if not colon:
                raise ParseError("malformed multipart part header")
            part.headers.append((name.strip().decode("utf-8", "surrogateescape"),
                                 value.strip().decode("utf-8", "surrogateescape")))
        part.body = chunk
        parts.append(part)
        pos = nxt + 2


def find_sdp(content_type, bytes body not None):
    """The application/sdp body of a message: the body itself or its SDP part; else None.

    `content_type` is the whole Content-Type value, parameters included (the boundary)."""
    if content_type is None:
        return None
    cdef str media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/sdp":
        return body
    if media.startswith("multipart/"):
        for part in split_multipart(content_type, body):
            if part.content_type == "application/sdp":
                return part.body
            if (part.content_type or "").startswith("multipart/"):
                for name, value in part.headers:
                    if name.lower() in ("content-type", "c"):
                        found = find_sdp(value, part.body)
                        if found is not None:
                            return found
    return None
