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


cdef bint _ip_literal(bytes addr):
    """An IPv4/IPv6 literal, optionally with /ttl: c= lines must not carry free text."""
    cdef int c
    if not addr:
        return False
    for c in addr:
        if not (HEXVAL[c] >= 0 or c == 46 or c == 58 or c == 47):
            return False
    return True


cdef bytes _connection(bytes value, str address):
    """A c= value kept (when it is an IP literal) or pointed at `address`."""
    cdef list parts = value.split(b" ")
    if len(parts) != 3 or parts[0] != b"IN" or parts[1] not in (b"IP4", b"IP6"):
        raise ParseError("malformed c= line")
    if address is not None:
        return _addr_type(address) + b" " + address.encode("ascii")
    if not _ip_literal(parts[2]):
        raise ParseError("c= address is not an IP literal")
    return value


cdef inline bytes _addr_type(str address):
    return b"IN IP6" if ":" in address else b"IN IP4"


cdef bint _safe_scalar(bytes value):
    """b= and t= values: modifier/number forms only (`AS:64`, `0 0`)."""
    cdef int c
    for c in value:
        if not ((CLS[c] & C_ALNUM) or c == 58 or c == 32 or c == 45):
            return False
    return True


cdef list _rebuild_lines(bytes body, str connection_address, object media_ports,
                         frozenset attributes):
    """Every line of the rebuilt SDP after o= (s=, c=, t=, b=, m=, a=), as bytes."""
    cdef list out = [b"s=-"]
    cdef int kind
    cdef bytes value, name
    cdef Py_ssize_t colon
    cdef int media_index = -1
    cdef list parts
    cdef bint times = False
    for kind, value in _sdp_lines(body):
        if kind == 109:  # m
            media_index += 1
            _media_line(value)  # validates
            if media_ports is not None:
                parts = value.split(b" ")
                port, slash, count = parts[1].partition(b"/")
                parts[1] = b"%d" % media_ports[media_index] + slash + count
                value = b" ".join(parts)
            out.append(b"m=" + value)
        elif kind == 99:  # c
            out.append(b"c=" + _connection(value, connection_address))
        elif kind == 116:  # t
            if _safe_scalar(value):
                out.append(b"t=" + value)
                times = True
        elif kind == 98:  # b
            if _safe_scalar(value):
                out.append(b"b=" + value)
        elif kind == 97:  # a
            colon = value.find(b":")
            name = value if colon < 0 else value[:colon]
            if name.decode("ascii", "replace").lower() in attributes:
                out.append(b"a=" + value)
        # v, o, s are rebuilt; i u e p k z r and anything unknown never cross.
    if not times:
        # t= is mandatory (RFC 4566 §5); it goes before the first a= or m= line.
        at = len(out)
        for k, line in enumerate(out):
            if line[:2] in (b"a=", b"m="):
                at = k
                break
        out.insert(at, b"t=0 0")
    return out


cdef bytes _origin_line(str address, long long session_id, long long version):
    return b"o=- %d %d %s %s" % (session_id, version, _addr_type(address),
                                 address.encode("ascii"))


def rebuild_sdp(bytes body not None, *, str origin_address not None, long long session_id,
                long long version, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
    """Rebuild an SDP body through the allow-list (see `_core.pyi`). Raises ParseError."""
    cdef list lines = _rebuild_lines(body, connection_address, media_ports, attributes)
    return b"v=0\r\n" + _origin_line(origin_address, session_id, version) + b"\r\n" + (
        b"\r\n".join(lines)) + b"\r\n"


cdef class SdpOrigin:
    """The o= state of one leg (RFC 3264 §8): fixed session id, version bumped on change."""

    cdef public long long session_id
    cdef public long long version
    cdef str _address
    cdef bytes _last

    def __init__(self, str address not None, session_id=None):
        self._address = address
        self.session_id = (int.from_bytes(os.urandom(4), "big") & 0x7fffffff
                           if session_id is None else session_id)
        self.version = 0
        self._last = None

    def rebuild(self, bytes body not None, *, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
        cdef bytes rest = b"\r\n".join(
            _rebuild_lines(body, connection_address, media_ports, attributes)) + b"\r\n"
        if self._last is not None and rest != self._last:
            self.version += 1
        self._last = rest
        return b"v=0\r\n" + _origin_line(self._address, self.session_id, self.version) + (
            b"\r\n" + rest)


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
        for line in head.split(b"\r\n"):
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
