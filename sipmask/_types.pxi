# URIs, name-addr, Via and CSeq: scanners over bytes plus the small value objects they build.

cdef enum:
    SCHEME_OTHER = 0
    SCHEME_SIP = 1
    SCHEME_SIPS = 2
    SCHEME_TEL = 3

cdef struct UriSpan:
    int kind
    Py_ssize_t scheme_s, scheme_e
    Py_ssize_t user_s, user_e
    Py_ssize_t pass_s, pass_e
    Py_ssize_t host_s, host_e
    int port
    Py_ssize_t params_s, params_e
    Py_ssize_t headers_s, headers_e
    Py_ssize_t opaque_s, opaque_e


cdef inline Py_ssize_t _uri_params(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """*( ";" pname [ "=" pvalue ] ) of a URI; stops at the first other character."""
    cdef Py_ssize_t s
    while i < end and p[i] == 59:
        s = i + 1
        i = _escaped_run(p, s, end, C_PARAM)
        if i <= s:
            return -1
        if i < end and p[i] == 61:
            s = i + 1
            i = _escaped_run(p, s, end, C_PARAM)
            if i <= s:
                return -1
    return i


cdef Py_ssize_t _scan_uri(const uchar* p, Py_ssize_t i, Py_ssize_t end, UriSpan* u) noexcept nogil:
    """Validate the URI filling exactly [i, end) and record its parts; -1 when malformed."""
    cdef Py_ssize_t k, at, colon, s
    u.kind = SCHEME_OTHER
    u.user_s = u.user_e = u.pass_s = u.pass_e = u.host_s = u.host_e = -1
    u.params_s = u.params_e = u.headers_s = u.headers_e = u.opaque_s = u.opaque_e = -1
    u.port = -1
    u.scheme_s = i
    # scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    if i >= end or not (CLS[p[i]] & C_ALNUM) or (48 <= p[i] <= 57):
        return -1
    k = i
    while k < end and ((CLS[p[k]] & C_ALNUM) or p[k] == 43 or p[k] == 45 or p[k] == 46):
        k += 1
    if k >= end or p[k] != 58:
        return -1
    u.scheme_e = k
    if k - i == 3 and _casecmp(p + i, <const uchar*>b"sip", 3):
        u.kind = SCHEME_SIP
    elif k - i == 4 and _casecmp(p + i, <const uchar*>b"sips", 4):
        u.kind = SCHEME_SIPS
    elif k - i == 3 and _casecmp(p + i, <const uchar*>b"tel", 3):
        u.kind = SCHEME_TEL
    i = k + 1
    if u.kind == SCHEME_OTHER:
        # Opaque: anything printable except characters that delimit a URI in a header.
        u.opaque_s = i
        if i >= end:
            return -1
        while i < end:
            if p[i] <= 32 or p[i] == 127 or p[i] == 60 or p[i] == 62 or p[i] == 34:
                return -1
            i += 1
        u.opaque_e = end
        return end
    if u.kind == SCHEME_TEL:
        # RFC 3966 telephone-subscriber, leniently: the number up to the first ';'.
        u.user_s = i
        i = _escaped_run(p, i, end, C_PARAM)
        if i <= u.user_s or i < 0:
            return -1
        u.user_e = i
        u.params_s = i
        i = _uri_params(p, i, end)
        if i != end:
            return -1
        u.params_e = end
        return end
    # sip / sips: [ userinfo "@" ] hostport uri-parameters [ headers ]
    cdef const uchar* hit = <const uchar*>memchr(p + i, 64, end - i)
    at = -1 if hit == NULL else hit - p
    if at >= 0:
        hit = <const uchar*>memchr(p + i, 58, at - i)
        colon = -1 if hit == NULL else hit - p
        u.user_s = i
        u.user_e = at if colon < 0 else colon
        if u.user_e == u.user_s or _escaped_run(p, u.user_s, u.user_e, C_USER) != u.user_e:
            return -1
        if colon >= 0:
            u.pass_s = colon + 1
            u.pass_e = at
            if _escaped_run(p, u.pass_s, u.pass_e, C_USER) != u.pass_e:
                return -1
        i = at + 1
    u.host_s = i
    i = _host(p, i, end)
    if i < 0:
        return -1
    u.host_e = i
    if i < end and p[i] == 58:
        i = _port(p, i + 1, end, &u.port)
        if i < 0:
            return -1
    u.params_s = i
    i = _uri_params(p, i, end)
    if i < 0:
        return -1
    u.params_e = i
    if i < end and p[i] == 63:  # '?' headers
        i += 1
        u.headers_s = i
        while True:
            s = i
            i = _escaped_run(p, i, end, C_HNV)
            if i <= s or i >= end or p[i] != 61:
                return -1
            i = _escaped_run(p, i + 1, end, C_HNV)
            if i < 0:
                return -1
            if i < end and p[i] == 38:
                i += 1
                continue
            break
        u.headers_e = i
    return end if i == end else -1


cdef dict _uri_param_dict(const uchar* p, Py_ssize_t i, Py_ssize_t end):
    cdef dict out = {}
    cdef Py_ssize_t s, e, vs
    while i < end and p[i] == 59:
        s = i + 1
        e = s
        while e < end and p[e] != 59 and p[e] != 61:
            e += 1
        if e < end and p[e] == 61:
            vs = e + 1
            i = vs
            while i < end and p[i] != 59:
                i += 1
            out[_decode(p, s, e).lower()] = _decode(p, vs, i)
        else:
            out[_decode(p, s, e).lower()] = None
            i = e
    return out


cdef dict _uri_header_dict(const uchar* p, Py_ssize_t i, Py_ssize_t end):
    cdef dict out = {}
    cdef Py_ssize_t s, eq
    while i < end:
        s = i
        eq = -1
        while i < end and p[i] != 38:
            if p[i] == 61 and eq < 0:
                eq = i
            i += 1
        out[_decode(p, s, eq)] = _decode(p, eq + 1, i)
        i += 1
    return out


cdef URI _build_uri(const uchar* p, UriSpan* u):
    cdef URI uri = URI.__new__(URI)
    uri.scheme = _decode(p, u.scheme_s, u.scheme_e).lower()
    uri.user = None if u.user_s < 0 else _decode(p, u.user_s, u.user_e)
    uri.password = None if u.pass_s < 0 else _decode(p, u.pass_s, u.pass_e)
    uri.host = None if u.host_s < 0 else _decode(p, u.host_s, u.host_e)
    uri.port = None if u.port < 0 else u.port
    uri.params = {} if u.params_s < 0 else _uri_param_dict(p, u.params_s, u.params_e)
    uri.headers = {} if u.headers_s < 0 else _uri_header_dict(p, u.headers_s, u.headers_e)
    uri.opaque = None if u.opaque_s < 0 else _decode(p, u.opaque_s, u.opaque_e)
    return uri


cdef inline bytes _to_bytes(str text):
    return text.encode("utf-8", "surrogateescape")


cdef class URI:
    """A sip:, sips: or tel: URI; other schemes keep their text in `opaque`."""

    cdef public str scheme
    cdef public str user
    cdef public str password
    cdef public str host
    cdef public object port
    cdef public dict params
    cdef public dict headers
    cdef public str opaque

    def __init__(self, str scheme, user=None, host=None, port=None, params=None, headers=None,
                 *, password=None, opaque=None):
        self.scheme = scheme.lower()
        self.user = user
        self.host = host
        self.port = port
        self.params = dict(params) if params else {}
        self.headers = dict(headers) if headers else {}
        self.password = password
        self.opaque = opaque

    def __str__(self):
        cdef list parts = [self.scheme, ":"]
        if self.opaque is not None:
            parts.append(self.opaque)
            return "".join(parts)
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            if self.host is not None:
                parts.append("@")
        if self.host is not None:
            parts.append(self.host)
        if self.port is not None:
            parts.append(":%d" % self.port)
        for name, value in self.params.items():
            parts.append(";" + name if value is None else ";%s=%s" % (name, value))
        if self.headers:
            parts.append("?" + "&".join(["%s=%s" % kv for kv in self.headers.items()]))
        return "".join(parts)

    def __repr__(self):
        return "URI(%r)" % str(self)

    def __eq__(self, other):
        """URI comparison of RFC 3261 §19.1.4: escapes equal what they encode, scheme and
        host ignore case, the user/ttl/method/maddr/transport parameters must agree, other
        parameters only when both carry them, and headers must agree."""
        if not isinstance(other, URI):
            return NotImplemented
        cdef URI o = <URI>other
        if (self.scheme != o.scheme or self.port != o.port
                or _unesc(self.user) != _unesc(o.user)
                or _unesc(self.password) != _unesc(o.password)
                or _lower(_unesc(self.host)) != _lower(_unesc(o.host))
                or _unesc(self.opaque) != _unesc(o.opaque)):
            return False
        mine = {k: _lower(_unesc(v)) for k, v in self.params.items()}
        theirs = {k: _lower(_unesc(v)) for k, v in o.params.items()}
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if mine.get(name, "") != theirs.get(name, ""):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return ({k.lower(): _unesc(v) for k, v in self.headers.items()}
                == {k.lower(): _unesc(v) for k, v in o.headers.items()})

    def __hash__(self):
        # Only what __eq__ always compares goes in, so equal URIs hash alike.
        return hash((self.scheme, _unesc(self.user), _lower(_unesc(self.host)), self.port))


cdef object _unesc(object text):
    return text if text is None or "%" not in text else unescape(text)


cdef object _lower(object text):
    return None if text is None else text.lower()


def parse_uri(str text not None):
    """Parse a URI. Raises ParseError."""
    cdef bytes data = _to_bytes(text)
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef UriSpan u
    if _scan_uri(p, 0, n, &u) < 0:
        raise ParseError("malformed URI")
    return _build_uri(p, &u)


def unescape(str text not None):
    """Decode %HH escapes (RFC 3261 §19.1.2); invalid escapes are kept as written."""
    if "%" not in text:
        return text
    cdef bytes data = _to_bytes(text)
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef bytearray out = bytearray()
    cdef Py_ssize_t i = 0
    while i < n:
        if p[i] == 37 and i + 2 < n and HEXVAL[p[i + 1]] >= 0 and HEXVAL[p[i + 2]] >= 0:
            out.append(HEXVAL[p[i + 1]] * 16 + HEXVAL[p[i + 2]])
            i += 3
        else:
            out.append(p[i])
            i += 1
    return bytes(out).decode("utf-8", "surrogateescape")


# --- name-addr ---------------------------------------------------------------------------

cdef struct NaSpan:
    Py_ssize_t disp_s, disp_e   # display name as written (quotes included), -1 if none
    Py_ssize_t uri_s, uri_e
    Py_ssize_t end              # position after the header parameters


cdef Py_ssize_t _scan_name_addr(const uchar* p, Py_ssize_t i, Py_ssize_t end, NaSpan* s,
                                UriSpan* u, dict params, Py_ssize_t* tag_s,
                                Py_ssize_t* tag_e) except -2:
    """( name-addr / addr-spec ) *( SEMI generic-param ); returns the position after it
    (at a ',' or `end`), or -1 when malformed.

    Liberal where RFC 4475 §3.1.2 allows it: an unquoted display name may hold any text before
    '<' (baddn) and whitespace just inside the angle brackets is ignored (badaspec)."""
    cdef Py_ssize_t k, lt, gt, q
    s.disp_s = s.disp_e = -1
    i = _sws(p, i, end)
    if i >= end:
        return -1
    if p[i] == 34:
        q = _quoted(p, i, end)
        if q < 0:
            return -1
        s.disp_s = i
        s.disp_e = q
        i = _sws(p, q, end)
        if i >= end or p[i] != 60:
            return -1
        lt = i
    else:
        lt = -1
        k = i
        while k < end and p[k] != 62:
            if p[k] == 60:
                lt = k
                break
            if p[k] == 34 or p[k] == 127 or (p[k] < 32 and not _is_lws(p[k])):
                return -1  # quotes or control characters in an unquoted display name
            k += 1
        if lt >= 0:
            q = _rtrim(p, i, lt)
            if q > i:
                s.disp_s = i
                s.disp_e = q
    if lt >= 0:
        gt = lt + 1
        while gt < end and p[gt] != 62:
            gt += 1
        if gt >= end:
            return -1
        s.uri_s = _sws(p, lt + 1, gt)
        s.uri_e = _rtrim(p, s.uri_s, gt)
        i = gt + 1
    else:
        # addr-spec: a URI with ',', '?' or ';' must be in <> (RFC 3261 §20), so it ends there
        s.uri_s = i
        k = i
        while k < end and not _is_lws(p[k]) and p[k] != 59 and p[k] != 44:
            k += 1
        s.uri_e = k
        i = k
    if _scan_uri(p, s.uri_s, s.uri_e, u) < 0:
        return -1
    i = _header_params(p, i, end, params, tag_s, tag_e)
    if i < 0:
        return -1
    i = _sws(p, i, end)
    s.end = i
    return i


cdef str _unquote(str text):
    """Strip the quotes of a quoted-string and resolve its quoted-pairs."""
    cdef list out = []
    cdef Py_ssize_t i = 1
    cdef Py_ssize_t n = len(text) - 1
    while i < n:
        if text[i] == "\\" and i + 1 < n:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


cdef NameAddr _build_name_addr(const uchar* p, NaSpan* s, UriSpan* u, dict params):
    cdef NameAddr na = NameAddr.__new__(NameAddr)
    cdef str disp
    if s.disp_s < 0:
        na.display_name = None
    else:
        disp = _decode_unfolded(p, s.disp_s, s.disp_e)
        na.display_name = _unquote(disp) if p[s.disp_s] == 34 else disp
    na.uri = _build_uri(p, u)
    na.params = params
    return na


cdef NameAddr _name_addr_from(const uchar* p, Py_ssize_t i, Py_ssize_t end):
    cdef NaSpan s
    cdef UriSpan u
    cdef dict params = {}
    if _scan_name_addr(p, i, end, &s, &u, params, NULL, NULL) != end:
        raise ParseError("malformed name-addr")
    return _build_name_addr(p, &s, &u, params)


cdef class NameAddr:
    """name-addr / addr-spec with header parameters (From, To, Contact, Route, PAI...)."""

    cdef public str display_name
    cdef public URI uri
    cdef public dict params

    def __init__(self, URI uri not None, display_name=None, params=None):
        self.uri = uri
        self.display_name = display_name
        self.params = dict(params) if params else {}

    @property
    def tag(self):
        return self.params.get("tag")

    def __str__(self):
        cdef list parts = []
        if self.display_name:
            parts.append('"%s" ' % self.display_name.replace("\\", "\\\\").replace('"', '\\"'))
        parts.append("<%s>" % self.uri)
        for name, value in self.params.items():
            parts.append(";" + name if value is None else ";%s=%s" % (name, value))
        return "".join(parts)

    def __repr__(self):
        return "NameAddr(%r)" % str(self)

    def __eq__(self, other):
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display_name, self.uri, self.params) == (
            (<NameAddr>other).display_name, (<NameAddr>other).uri, (<NameAddr>other).params)


def parse_name_addr(str text not None):
    """Parse a name-addr or addr-spec with header parameters. Raises ParseError."""
    cdef bytes data = _to_bytes(text)
    return _name_addr_from(<const uchar*>PyBytes_AS_STRING(data), 0, PyBytes_GET_SIZE(data))


# --- Via -----------------------------------------------------------------------------------

cdef Py_ssize_t _scan_via_list(const uchar* p, Py_ssize_t i, Py_ssize_t end, list out) except -2:
    """1#via-parm (RFC 3261 §20.42), with the SWS the grammar allows around '/', ';', '='
    and ','. Appends Via objects to `out` when given; returns `end` or -1."""
    cdef Py_ssize_t ps, pe, vs, ve, ts, te, hs, he, k
    cdef int port
    cdef Via via
    cdef dict params
    while True:
        i = _sws(p, i, end)
        ps = i
        i = _token(p, i, end)
        if i == ps:
            return -1
        pe = i
        i = _sws(p, i, end)
        if i >= end or p[i] != 47:
            return -1
        i = _sws(p, i + 1, end)
        vs = i
        i = _token(p, i, end)
        if i == vs:
            return -1
        ve = i
        i = _sws(p, i, end)
        if i >= end or p[i] != 47:
            return -1
        i = _sws(p, i + 1, end)
        ts = i
        i = _token(p, i, end)
        if i == ts:
            return -1
        te = i
        k = _sws(p, i, end)
        if k == i:
            return -1
        i = k
        hs = i
        i = _host(p, i, end)
        if i < 0:
            return -1
        he = i
        port = -1
        i = _sws(p, i, end)
        if i < end and p[i] == 58:
            i = _port(p, _sws(p, i + 1, end), end, &port)
            if i < 0:
                return -1
        params = {} if out is not None else None
        i = _header_params(p, i, end, params, NULL, NULL)
        if i < 0:
            return -1
        if out is not None:
            via = Via.__new__(Via)
            via.protocol = _decode(p, ps, pe) + "/" + _decode(p, vs, ve)
            via.transport = _decode(p, ts, te).upper()
            via.host = _decode(p, hs, he)
            via.port = None if port < 0 else port
            via.params = params
            out.append(via)
        i = _sws(p, i, end)
        if i >= end:
            return end
        if p[i] != 44:
            return -1
        i += 1


cdef class Via:
    """One via-parm: `SIP/2.0/UDP host:port;branch=...`."""

    cdef public str protocol
    cdef public str transport
    cdef public str host
    cdef public object port
    cdef public dict params

    def __init__(self, str transport not None, str host not None, port=None, params=None):
        self.protocol = "SIP/2.0"
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params = dict(params) if params else {}

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def received(self):
        return self.params.get("received")

    @property
    def rport(self):
        value = self.params.get("rport")
        if value and value.isdigit() and len(value) <= 5 and int(value) <= 65535:
            return int(value)
        return None

    @property
    def has_rport(self):
        return "rport" in self.params

    def __str__(self):
        cdef list parts = ["%s/%s %s" % (self.protocol, self.transport, self.host)]
        if self.port is not None:
            parts.append(":%d" % self.port)
        for name, value in self.params.items():
            parts.append(";" + name if value is None else ";%s=%s" % (name, value))
        return "".join(parts)

    def __repr__(self):
        return "Via(%r)" % str(self)

    def __eq__(self, other):
        if not isinstance(other, Via):
            return NotImplemented
        cdef Via o = <Via>other
        return (self.protocol, self.transport, self.host.lower(), self.port, self.params) == (
            o.protocol, o.transport, o.host.lower(), o.port, o.params)


def parse_via(str text not None):
    """Parse one Via header field value (one or more comma-separated vias). Raises ParseError."""
    cdef bytes data = _to_bytes(text)
    cdef list out = []
    if _scan_via_list(<const uchar*>PyBytes_AS_STRING(data), 0, PyBytes_GET_SIZE(data), out) < 0:
        raise ParseError("malformed Via")
    return out


# --- CSeq ----------------------------------------------------------------------------------

cdef bint _scan_cseq(const uchar* p, Py_ssize_t i, Py_ssize_t end, long long* number,
                     Py_ssize_t* ms, Py_ssize_t* me) noexcept nogil:
    """CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 §8.1.1.5)."""
    cdef Py_ssize_t s
    i = _sws(p, i, end)
    s = i
    while i < end and 48 <= p[i] <= 57:
        i += 1
    if not _number(p, s, i, 2147483647, number):
        return False
    s = _sws(p, i, end)
    if s == i:
        return False
    i = _token(p, s, end)
    if i == s or _sws(p, i, end) != end:
        return False
    ms[0] = s
    me[0] = i
    return True


cdef class CSeq:
    cdef public long long number
    cdef public str method

    def __init__(self, long long number, str method not None):
        self.number = number
        self.method = method

    def __str__(self):
        return "%d %s" % (self.number, self.method)

    def __repr__(self):
        return "CSeq(%d, %r)" % (self.number, self.method)

    def __eq__(self, other):
        if not isinstance(other, CSeq):
            return NotImplemented
        return self.number == (<CSeq>other).number and self.method == (<CSeq>other).method
