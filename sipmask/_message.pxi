# SIP messages: the parser, header access, mutation and the serialiser.
#
# A parsed message keeps the datagram as one bytes object and a C array of header fields,
# each a set of offsets into it (name, value, the raw field with its line end). Nothing else
# is built until asked for: kamailio's parse_headers idea, with wire bytes kept as h11 does. A
# field added or replaced by the B2BUA is a small bytes object of its own ("Name: value\r\n")
# that the field points into, so an edited message and one built from scratch serialise the
# same way: untouched fields are copied as they came.

cdef enum:
    INLINE_FIELDS = 24

cdef struct Field:
    int name_s
    int name_e
    int value_s      # value span: leading/trailing whitespace trimmed, folds kept
    int value_e
    int raw_e        # end of the whole field (raw field = [name_s, raw_e), line end included)
    int extra        # -1: in the message's source; else index into Message._extra
    short hid
    unsigned char folded
    unsigned char deleted


cdef inline bint _name_ok(const uchar* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    if n == 0:
        return False
    for k in range(n):
        if not (CLS[p[k]] & C_TOKEN):
            return False
    return True


cdef str _checked(str text, str what, bint spaces):
    """A start-line element set by code: CR, LF and NUL (and SP where the grammar has none)
    would let it write extra lines into the message."""
    cdef Py_UCS4 c
    if not text:
        raise ValueError("empty %s" % what)
    for c in text:
        if c < 32 and c != 9 or c == 127 or (c == 32 and not spaces):
            raise ValueError("%s contains a control character or space: %r" % (what, text))
    return text


cdef str _checked_method(str method):
    _checked(method, "method", False)
    for c in method:
        if c > 127 or not (CLS[<int>ord(c)] & C_TOKEN):
            raise ValueError("method is not a token: %r" % method)
    return method


@cython.freelist(64)
cdef class Message:
    """A SIP message (see `_core.pyi` for the contract)."""

    cdef bytes _src
    cdef const uchar* _p
    cdef Field* _fields
    cdef int _nfields
    cdef int _cap
    cdef Field _inline[INLINE_FIELDS]
    cdef list _extra
    cdef int _sl_end          # raw start line, line end included: [0, _sl_end)
    cdef bint _sl_dirty       # start line changed (or built): write it anew
    cdef int _body_s
    cdef int _body_e
    cdef bytes _body          # set when the body was replaced or built
    cdef int _ver_s
    cdef int _ver_e
    cdef str _version
    # Tag spans of the first From and To found while validating them (-1: no tag), valid
    # until a header is changed: dialog matching reads them for every message.
    cdef bint _tags_cached
    cdef int _ftag_s
    cdef int _ftag_e
    cdef int _ttag_s
    cdef int _ttag_e

    def __cinit__(self):
        self._fields = self._inline
        self._nfields = 0
        self._cap = INLINE_FIELDS
        self._src = b""
        self._p = <const uchar*>PyBytes_AS_STRING(self._src)

    def __dealloc__(self):
        if self._fields != self._inline:
            free(self._fields)

    # --- field storage -----------------------------------------------------------------

    cdef inline Field* _grow(self) except NULL:
        if self._nfields < self._cap:
            return &self._fields[self._nfields]
        return self._grow_slow()

    cdef Field* _grow_slow(self) except NULL:
        cdef Field* fresh
        cdef int cap
        cap = self._cap * 2
        fresh = <Field*>malloc(cap * sizeof(Field))
        if fresh == NULL:
            raise MemoryError()
        memcpy(fresh, self._fields, self._nfields * sizeof(Field))
        if self._fields != self._inline:
            free(self._fields)
        self._fields = fresh
        self._cap = cap
        return &self._fields[self._nfields]

    cdef inline const uchar* _buf(self, Field* f):
        if f.extra < 0:
            return self._p
        return <const uchar*>PyBytes_AS_STRING(<bytes>self._extra[f.extra])

    cdef str _value(self, Field* f):
        cdef const uchar* p = self._buf(f)
        if f.folded:
            return _decode_unfolded(p, f.value_s, f.value_e)
        return _decode(p, f.value_s, f.value_e)

    cdef str _name(self, Field* f):
        return _decode(self._buf(f), f.name_s, f.name_e)

    cdef Field _make_field(self, str name, str value) except *:
        """A new field "name: value" stored in `_extra` as its own wire bytes."""
        cdef bytes bname = _to_bytes(name)
        cdef bytes bvalue = _to_bytes(value)
        cdef const uchar* n = <const uchar*>PyBytes_AS_STRING(bname)
        cdef const uchar* v = <const uchar*>PyBytes_AS_STRING(bvalue)
        cdef Py_ssize_t nlen = PyBytes_GET_SIZE(bname)
        cdef Py_ssize_t vs = 0, ve = PyBytes_GET_SIZE(bvalue), k
        cdef Field f
        cdef bytes raw
        cdef char* w
        if not _name_ok(n, nlen):
            raise ValueError("header name is not a token: %r" % name)
        for k in range(ve):
            # CR or LF would let a value inject header fields; NUL only as a quoted-pair
            # (RFC 3261 §25.1), as a display name copied from a parsed message may hold it.
            if v[k] == 13 or v[k] == 10 or (v[k] == 0 and (k == 0 or v[k - 1] != 92)):
                raise ValueError("header value contains CR, LF or NUL")
        while vs < ve and _is_ws(v[vs]):
            vs += 1
        while ve > vs and _is_ws(v[ve - 1]):
            ve -= 1
        raw = PyBytes_FromStringAndSize(NULL, nlen + 2 + (ve - vs) + 2)
        w = PyBytes_AS_STRING(raw)
        memcpy(w, n, nlen)
        w[nlen] = 58
        w[nlen + 1] = 32
        memcpy(w + nlen + 2, v + vs, ve - vs)
        w[nlen + 2 + ve - vs] = 13
        w[nlen + 3 + ve - vs] = 10
        if self._extra is None:
            self._extra = []
        f.extra = len(self._extra)
        self._extra.append(raw)
        f.name_s = 0
        f.name_e = nlen
        f.value_s = nlen + 2
        f.value_e = nlen + 2 + (ve - vs)
        f.raw_e = nlen + 4 + (ve - vs)
        f.hid = _field_hid(n, nlen)
        f.folded = 0
        f.deleted = 0
        return f

    cdef inline bint _match(self, Field* f, Query* q):
        if f.deleted or f.hid != q.hid:
            return False
        if q.hid != H_OTHER:
            return True
        return f.name_e - f.name_s == q.n and _casecmp(self._buf(f) + f.name_s, q.p, q.n)

    cdef Field* _first(self, int hid):
        cdef int k
        for k in range(self._nfields):
            if self._fields[k].hid == hid and not self._fields[k].deleted:
                return &self._fields[k]
        return NULL

    # --- reading -------------------------------------------------------------------------

    @property
    def is_request(self):
        return False

    @property
    def version(self):
        if self._version is None:
            if self._ver_e - self._ver_s == 7 and memcmp(self._p + self._ver_s, b"SIP/2.0", 7) == 0:
                self._version = "SIP/2.0"
            else:
                self._version = _decode(self._p, self._ver_s, self._ver_e)
        return self._version

    @version.setter
    def version(self, str value not None):
        self._version = _checked(value, "version", False)
        self._sl_dirty = True

    @property
    def body(self):
        if self._body is None:
            self._body = PyBytes_FromStringAndSize(<const char*>self._p + self._body_s,
                                                   self._body_e - self._body_s)
        return self._body

    @body.setter
    def body(self, value):
        self._body = bytes(value)

    def header(self, str name not None):
        """First value of header `name`, or None."""
        cdef Query q
        _query(name, &q)
        cdef Field* f
        cdef int k
        cdef const uchar* p
        for k in range(self._nfields):
            f = &self._fields[k]
            if not self._match(f, &q):
                continue
            if _IS_LIST[q.hid]:
                p = self._buf(f)
                if memchr(p + f.value_s, 44, f.value_e - f.value_s) != NULL:
                    return _first_element(p, f.value_s, f.value_e, f.folded)
            return self._value(f)
        return None

    def headers(self, str name not None):
        """All values of header `name`, lists split on their commas."""
        cdef Query q
        _query(name, &q)
        cdef list out = []
        cdef Field* f
        cdef int k
        cdef const uchar* p
        for k in range(self._nfields):
            f = &self._fields[k]
            if not self._match(f, &q):
                continue
            p = self._buf(f)
            if _IS_LIST[q.hid] and memchr(p + f.value_s, 44, f.value_e - f.value_s) != NULL:
                out.extend(_split_list(p, f.value_s, f.value_e, f.folded))
            else:
                out.append(self._value(f))
        return out

    def count(self, str name not None):
        """Number of header fields named `name`."""
        cdef Query q
        _query(name, &q)
        cdef int k, n = 0
        for k in range(self._nfields):
            if self._match(&self._fields[k], &q):
                n += 1
        return n

    def header_items(self):
        """Every header field as (name as on the wire, unfolded value), in order."""
        cdef list out = []
        cdef int k
        for k in range(self._nfields):
            if not self._fields[k].deleted:
                out.append((self._name(&self._fields[k]), self._value(&self._fields[k])))
        return out

    # --- mutation ------------------------------------------------------------------------

    def set_header(self, str name not None, str value not None):
        """Replace every field named `name` by one with `value` (at the first one's place)."""
        self._tags_cached = False
        cdef Field f = self._make_field(name, value)
        cdef Query q
        _query(name, &q)
        cdef bint placed = False
        cdef int k
        for k in range(self._nfields):
            if self._match(&self._fields[k], &q):
                if placed:
                    self._fields[k].deleted = 1
                else:
                    self._fields[k] = f
                    placed = True
        if not placed:
            self._grow()[0] = f
            self._nfields += 1

    def add_header(self, str name not None, str value not None, *, bint first=False):
        """Add a field at the end, or before all others when `first`."""
        self._tags_cached = False
        cdef Field f = self._make_field(name, value)
        self._grow()
        if first:
            memmove(&self._fields[1], &self._fields[0], self._nfields * sizeof(Field))
            self._fields[0] = f
        else:
            self._fields[self._nfields] = f
        self._nfields += 1

    def remove_header(self, str name not None):
        """Remove every field named `name`; return how many were removed."""
        self._tags_cached = False
        cdef Query q
        _query(name, &q)
        cdef int k, n = 0
        for k in range(self._nfields):
            if self._match(&self._fields[k], &q):
                self._fields[k].deleted = 1
                n += 1
        return n

    def remove_first(self, str name not None):
        """Remove the first value of `name`, keeping the rest of a comma-joined field."""
        self._tags_cached = False
        cdef Query q
        _query(name, &q)
        cdef Field* f
        cdef int k
        cdef const uchar* p
        cdef Py_ssize_t e
        cdef str rest
        for k in range(self._nfields):
            f = &self._fields[k]
            if not self._match(f, &q):
                continue
            if _IS_LIST[q.hid]:
                p = self._buf(f)
                e = _list_next(p, f.value_s, f.value_e)
                if e < f.value_e:
                    rest = ", ".join(_split_list(p, e + 1, f.value_e, f.folded))
                    if rest:
                        self._fields[k] = self._make_field(self._name(f), rest)
                        return True
            f.deleted = 1
            return True
        return False

    def copy_headers(self, Message source not None, names):
        """Append every field of `source` named in `names`, in `source`'s order, keeping its
        wire bytes (the masking allow-list: only these cross to the other leg). Returns how
        many were copied."""
        cdef list queries = list(names)
        cdef int nq = len(queries)
        cdef Query* q = <Query*>malloc(max(nq, 1) * sizeof(Query))
        cdef int k, j, copied = 0
        cdef Field* f
        cdef Field g
        cdef const uchar* p
        cdef bytes raw
        if q == NULL:
            raise MemoryError()
        try:
            for j in range(nq):
                _query(queries[j], &q[j])
            for k in range(source._nfields):
                f = &source._fields[k]
                for j in range(nq):
                    if source._match(f, &q[j]):
                        break
                else:
                    continue
                p = source._buf(f)
                if f.folded or p[f.raw_e - 2] != 13:
                    # unfold (and end with CRLF) rather than carry the peer's line layout
                    g = self._make_field(source._name(f), source._value(f))
                else:
                    raw = PyBytes_FromStringAndSize(<const char*>p + f.name_s,
                                                    f.raw_e - f.name_s)
                    if self._extra is None:
                        self._extra = []
                    g = f[0]
                    g.extra = len(self._extra)
                    self._extra.append(raw)
                    g.value_s -= g.name_s
                    g.value_e -= g.name_s
                    g.raw_e -= g.name_s
                    g.name_e -= g.name_s
                    g.name_s = 0
                self._grow()[0] = g
                self._nfields += 1
                copied += 1
        finally:
            free(q)
        self._tags_cached = False
        return copied

    # --- typed accessors -----------------------------------------------------------------

    @property
    def call_id(self):
        cdef Field* f = self._first(H_CALL_ID)
        return None if f == NULL else self._value(f)

    @property
    def cseq(self):
        cdef Field* f = self._first(H_CSEQ)
        cdef long long number
        cdef Py_ssize_t ms, me
        cdef const uchar* p
        if f == NULL:
            return None
        p = self._buf(f)
        if not _scan_cseq(p, f.value_s, f.value_e, &number, &ms, &me):
            raise ParseError("malformed CSeq")
        return CSeq(number, _decode(p, ms, me))

    @property
    def via(self):
        cdef list out = []
        cdef Field* f
        cdef int k
        for k in range(self._nfields):
            f = &self._fields[k]
            if f.hid == H_VIA and not f.deleted:
                if _scan_via_list(self._buf(f), f.value_s, f.value_e, out) < 0:
                    raise ParseError("malformed Via")
        return out

    @property
    def top_via(self):
        cdef Field* f = self._first(H_VIA)
        cdef list out = []
        cdef const uchar* p
        if f == NULL:
            return None
        p = self._buf(f)
        if _scan_via_list(p, f.value_s, _list_next(p, f.value_s, f.value_e), out) < 0:
            raise ParseError("malformed Via")
        return out[0]

    cdef object _name_addr(self, int hid):
        cdef Field* f = self._first(hid)
        if f == NULL:
            return None
        return _name_addr_from(self._buf(f), f.value_s, f.value_e)

    cdef object _tag(self, int hid):
        cdef Field* f = self._first(hid)
        cdef NaSpan s
        cdef UriSpan u
        cdef Py_ssize_t ts = -1, te = -1
        cdef const uchar* p
        if f == NULL:
            return None
        if self._tags_cached:
            ts, te = (self._ftag_s, self._ftag_e) if hid == H_FROM else (self._ttag_s,
                                                                        self._ttag_e)
            return None if ts < 0 else _decode(self._p, ts, te)
        p = self._buf(f)
        if _scan_name_addr(p, f.value_s, f.value_e, &s, &u, None, &ts, &te) != f.value_e:
            raise ParseError("malformed %s" % _CANONICAL[hid])
        return None if ts < 0 else _decode(p, ts, te)

    @property
    def from_(self):
        return self._name_addr(H_FROM)

    @property
    def to(self):
        return self._name_addr(H_TO)

    @property
    def from_tag(self):
        return self._tag(H_FROM)

    @property
    def to_tag(self):
        return self._tag(H_TO)

    @property
    def contact(self):
        """Contact values; `Contact: *` gives an empty list."""
        cdef list out = []
        cdef Field* f
        cdef int k
        cdef const uchar* p
        cdef Py_ssize_t i, e, s, t
        for k in range(self._nfields):
            f = &self._fields[k]
            if f.hid != H_CONTACT or f.deleted:
                continue
            p = self._buf(f)
            if f.value_e - f.value_s == 1 and p[f.value_s] == 42:  # '*'
                continue
            i = f.value_s
            while i < f.value_e:
                e = _list_next(p, i, f.value_e)
                s = _sws(p, i, e)
                t = _rtrim(p, s, e)
                out.append(_name_addr_from(p, s, t))
                i = e + 1
        return out

    @property
    def max_forwards(self):
        cdef Field* f = self._first(H_MAX_FORWARDS)
        cdef long long v
        if f == NULL:
            return None
        if not _number(self._buf(f), f.value_s, f.value_e, 255, &v):
            raise ParseError("malformed Max-Forwards")
        return v

    @property
    def content_type(self):
        cdef Field* f = self._first(H_CONTENT_TYPE)
        cdef const uchar* p
        cdef Py_ssize_t e
        if f == NULL:
            return None
        p = self._buf(f)
        e = f.value_s
        while e < f.value_e and p[e] != 59:
            e += 1
        return _decode(p, f.value_s, _rtrim(p, f.value_s, e)).lower()

    # --- serialising ---------------------------------------------------------------------

    cdef bytes _start_line(self):
        raise NotImplementedError

    def __bytes__(self):
        cdef bytes body = self.body
        cdef bytes sl = self._start_line() if self._sl_dirty else None
        cdef Py_ssize_t blen = len(body)
        cdef Py_ssize_t total, pos
        cdef int k, cl = -1
        cdef Field* f
        cdef bytes cl_line = None
        cdef long long have
        cdef bytes out
        cdef char* w
        total = len(sl) if sl is not None else self._sl_end
        for k in range(self._nfields):
            f = &self._fields[k]
            if f.deleted:
                continue
            if f.hid == H_CONTENT_LENGTH:
                if cl < 0:
                    cl = k
                continue
            total += f.raw_e - f.name_s
        # Content-Length is always written and always right; an untouched correct one is
        # copied as it came, otherwise it is rewritten in place (or appended).
        if cl >= 0:
            f = &self._fields[cl]
            if not (f.extra < 0 and not f.folded
                    and _number(self._p, f.value_s, f.value_e, 1 << 40, &have) and have == blen):
                cl_line = self._name(f).encode() + b": %d\r\n" % blen
                total += len(cl_line)
            else:
                total += f.raw_e - f.name_s
        else:
            cl_line = b"Content-Length: %d\r\n" % blen
            total += len(cl_line)
        total += 2 + blen
        out = PyBytes_FromStringAndSize(NULL, total)
        w = PyBytes_AS_STRING(out)
        if sl is not None:
            memcpy(w, PyBytes_AS_STRING(sl), len(sl))
            pos = len(sl)
        else:
            memcpy(w, self._p, self._sl_end)
            pos = self._sl_end
        for k in range(self._nfields):
            f = &self._fields[k]
            if f.deleted or (f.hid == H_CONTENT_LENGTH and k != cl):
                continue
            if k == cl and cl_line is not None:
                memcpy(w + pos, PyBytes_AS_STRING(cl_line), len(cl_line))
                pos += len(cl_line)
                continue
            memcpy(w + pos, self._buf(f) + f.name_s, f.raw_e - f.name_s)
            pos += f.raw_e - f.name_s
        if cl < 0:
            memcpy(w + pos, PyBytes_AS_STRING(cl_line), len(cl_line))
            pos += len(cl_line)
        w[pos] = 13
        w[pos + 1] = 10
        memcpy(w + pos + 2, PyBytes_AS_STRING(body), blen)
        return out

    # --- copying and comparing -----------------------------------------------------------

    cdef void _copy_into(self, Message m) except *:
        cdef Field* dst
        m._src = self._src
        m._p = self._p
        if self._nfields > m._cap:
            dst = <Field*>malloc(self._nfields * sizeof(Field))
            if dst == NULL:
                raise MemoryError()
            m._fields = dst
            m._cap = self._nfields
        memcpy(m._fields, self._fields, self._nfields * sizeof(Field))
        m._nfields = self._nfields
        m._extra = None if self._extra is None else list(self._extra)
        m._sl_end = self._sl_end
        m._sl_dirty = self._sl_dirty
        m._body_s = self._body_s
        m._body_e = self._body_e
        m._body = self._body
        m._ver_s = self._ver_s
        m._ver_e = self._ver_e
        m._version = self._version
        m._tags_cached = self._tags_cached
        m._ftag_s, m._ftag_e = self._ftag_s, self._ftag_e
        m._ttag_s, m._ttag_e = self._ttag_s, self._ttag_e

    def copy(self):
        cdef Message m = type(self).__new__(type(self))
        self._copy_into(m)
        return m

    cdef tuple _start_key(self):
        raise NotImplementedError

    def _key(self):
        cdef list fields = []
        cdef int k
        cdef Field* f
        for k in range(self._nfields):
            f = &self._fields[k]
            if f.deleted or f.hid == H_CONTENT_LENGTH:
                continue
            fields.append((f.hid, self._name(f).lower() if f.hid == H_OTHER else None,
                           self._value(f)))
        return (self._start_key(), fields, self.body)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == (<Message>other)._key()

    __hash__ = None


cdef class Request(Message):
    cdef int _m_s
    cdef int _m_e
    cdef int _u_s
    cdef int _u_e
    cdef str _method
    cdef str _uri

    def __init__(self, str method not None, str uri not None, headers=(), body=b"", *,
                 str version not None="SIP/2.0"):
        self._method = _checked_method(method)
        self._uri = _checked(uri, "Request-URI", False)
        self._version = _checked(version, "version", False)
        self._sl_dirty = True
        for name, value in headers:
            self._grow()[0] = self._make_field(name, value)
            self._nfields += 1
        self._body = bytes(body)

    @property
    def is_request(self):
        return True

    @property
    def method(self):
        if self._method is None:
            self._method = _decode(self._p, self._m_s, self._m_e)
        return self._method

    @method.setter
    def method(self, str value not None):
        self._method = _checked_method(value)
        self._sl_dirty = True

    @property
    def uri(self):
        if self._uri is None:
            self._uri = _decode(self._p, self._u_s, self._u_e)
        return self._uri

    @uri.setter
    def uri(self, str value not None):
        self._uri = _checked(value, "Request-URI", False)
        self._sl_dirty = True

    @property
    def parsed_uri(self):
        return parse_uri(self.uri)

    cdef bytes _start_line(self):
        return _to_bytes("%s %s %s\r\n" % (self.method, self.uri, self.version))

    cdef tuple _start_key(self):
        return (self.method, self.uri, self.version)

    cdef void _copy_into(self, Message m) except *:
        Message._copy_into(self, m)
        cdef Request r = <Request>m
        r._m_s = self._m_s
        r._m_e = self._m_e
        r._u_s = self._u_s
        r._u_e = self._u_e
        r._method = self._method
        r._uri = self._uri

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.uri)


cdef class Response(Message):
    cdef int _status
    cdef int _r_s
    cdef int _r_e
    cdef str _reason

    def __init__(self, int status, str reason not None, headers=(), body=b"", *,
                 str version not None="SIP/2.0"):
        if not 100 <= status <= 699:
            raise ValueError("status code out of range: %d" % status)
        self._status = status
        self._reason = _checked(reason, "reason", True) if reason else ""
        self._version = _checked(version, "version", False)
        self._sl_dirty = True
        for name, value in headers:
            self._grow()[0] = self._make_field(name, value)
            self._nfields += 1
        self._body = bytes(body)

    @property
    def status(self):
        return self._status

    @status.setter
    def status(self, int value):
        if not 100 <= value <= 699:
            raise ValueError("status code out of range: %d" % value)
        self._status = value
        self._sl_dirty = True

    @property
    def reason(self):
        if self._reason is None:
            self._reason = _decode(self._p, self._r_s, self._r_e)
        return self._reason

    @reason.setter
    def reason(self, str value not None):
        self._reason = _checked(value, "reason", True) if value else ""
        self._sl_dirty = True

    cdef bytes _start_line(self):
        return _to_bytes("%s %d %s\r\n" % (self.version, self._status, self.reason))

    cdef tuple _start_key(self):
        return (self._status, self.reason, self.version)

    cdef void _copy_into(self, Message m) except *:
        Message._copy_into(self, m)
        cdef Response r = <Response>m
        r._status = self._status
        r._r_s = self._r_s
        r._r_e = self._r_e
        r._reason = self._reason

    def __repr__(self):
        return "<Response %d %s>" % (self._status, self.reason)


# --- the parser ------------------------------------------------------------------------------

cdef inline bint _version_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (any version parses; the stack answers
    505 to one it does not speak)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t d
    if e - s < 7 or not _casecmp(p + s, <const uchar*>b"sip/", 4):
        return False
    i = s + 4
    d = i
    while i < e and 48 <= p[i] <= 57:
        i += 1
    if i == d or i >= e or p[i] != 46:
        return False
    i += 1
    d = i
    while i < e and 48 <= p[i] <= 57:
        i += 1
    return i == e and i > d


cdef bint _request_uri_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    cdef UriSpan u
    if _scan_uri(p, s, e, &u) < 0:
        return False
    # RFC 3261 §19.1.1 table 1: headers are not allowed in a Request-URI (RFC 4475 escruri).
    return u.headers_s < 0


cdef bint _call_id_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    cdef Py_ssize_t i
    if s >= e:
        return False
    for i in range(s, e):
        if not (CLS[p[i]] & C_WORD) and p[i] != 64:
            return False
    return True


cdef object _salvage_error(str reason, int status, const uchar* p, Field* fields, int n,
                           Py_ssize_t m_s, Py_ssize_t m_e):
    """ParseError with what a 400 needs (RFC 3261 §8.2.6.2), read from the raw fields."""
    cdef list via = []
    cdef dict first = {}
    cdef int k
    cdef Field* f
    cdef str method = None if m_s < 0 else _decode(p, m_s, m_e)
    for k in range(n):
        f = &fields[k]
        if f.hid == H_VIA:
            via.append(_decode_unfolded(p, f.value_s, f.value_e))
        elif f.hid in (H_FROM, H_TO, H_CALL_ID, H_CSEQ) and f.hid not in first:
            first[f.hid] = _decode_unfolded(p, f.value_s, f.value_e)
    return ParseError(reason, status, method=method, via=tuple(via), from_=first.get(H_FROM),
                      to=first.get(H_TO), call_id=first.get(H_CALL_ID), cseq=first.get(H_CSEQ))


cdef Message _parse(bytes src, int max_headers):
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(src)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(src)
    cdef Py_ssize_t i = 0, j, le, line_e, a, b, hend
    cdef Message msg
    cdef Request req = None
    cdef Response resp = None
    cdef str error = None
    cdef int status = 400
    cdef Py_ssize_t m_s = -1, m_e = -1
    cdef Field* f
    cdef Field* cs_f = NULL
    cdef const uchar* nl
    cdef long long v, clen = -1
    cdef int k, code
    cdef Py_ssize_t ms, me, ts, te, cs_s = 0, cs_e = 0
    cdef bint seen_from = False, seen_to = False
    cdef NaSpan nas
    cdef UriSpan us

    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    while i < n and (p[i] == 13 or p[i] == 10):
        i += 1
    le = i
    while le < n and p[le] != 10:
        le += 1
    if le >= n:
        raise ParseError("no complete start line")
    line_e = le - 1 if le > i and p[le - 1] == 13 else le

    if line_e - i >= 4 and _casecmp(p + i, <const uchar*>b"sip/", 4):
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        resp = Response.__new__(Response)
        msg = resp
        j = i
        while j < line_e and p[j] != 32:
            j += 1
        msg._ver_s, msg._ver_e = i, j
        if not _version_ok(p, i, j):
            error = "malformed SIP-Version"
        elif j + 4 > line_e or not (49 <= p[j + 1] <= 54 and 48 <= p[j + 2] <= 57
                                    and 48 <= p[j + 3] <= 57):
            error = "malformed status code"
        elif j + 4 < line_e and p[j + 4] != 32:
            error = "malformed status code"
        else:
            resp._status = (p[j + 1] - 48) * 100 + (p[j + 2] - 48) * 10 + (p[j + 3] - 48)
            resp._r_s = j + 5 if j + 4 < line_e else line_e
            resp._r_e = line_e
            for a in range(resp._r_s, line_e):
                if (p[a] < 32 and p[a] != 9) or p[a] == 127:
                    error = "control character in reason phrase"
                    break
    else:
        # Request-Line = Method SP Request-URI SP SIP-Version (exactly one SP each)
        req = Request.__new__(Request)
        msg = req
        j = _token(p, i, line_e)
        if j == i or j >= line_e or p[j] != 32:
            error = "malformed Request-Line"
        else:
            req._m_s, req._m_e = i, j
            m_s, m_e = i, j
            a = j + 1
            b = line_e
            while b > a and p[b - 1] != 32:
                b -= 1
            msg._ver_s, msg._ver_e = b, line_e
            req._u_s, req._u_e = a, b - 1
            if b <= a or not _version_ok(p, b, line_e):
                error = "malformed Request-Line"
            elif b - 1 <= a:
                error = "empty Request-URI"
            else:
                for j in range(a, b - 1):
                    if p[j] <= 32:
                        error = "whitespace or control character in Request-URI"
                        break
                if error is None and not _request_uri_ok(p, a, b - 1):
                    error = "malformed Request-URI"
    msg._src = src
    msg._p = p
    msg._sl_end = le + 1

    # Header fields: name [SP/HTAB] ":" value, folded lines allowed (RFC 3261 §7.3.1).
    i = le + 1
    while True:
        if i >= n:
            # A datagram whose header section ends with the data (the RFC 4475 archive's
            # baddn.dat) is taken as having an empty body.
            hend = n
            break
        if p[i] == 10:
            hend = i + 1
            break
        if p[i] == 13 and i + 1 < n and p[i + 1] == 10:
            hend = i + 2
            break
        if msg._nfields >= max_headers:
            raise _salvage_error("too many header fields", 400, p, msg._fields, msg._nfields,
                                 m_s, m_e)
        f = msg._grow()
        f.name_s = i
        j = _token(p, i, n)
        f.name_e = j
        while j < n and _is_ws(p[j]):
            j += 1
        if j == i or j >= n or p[j] != 58:
            raise _salvage_error("malformed header field", 400, p, msg._fields, msg._nfields,
                                 m_s, m_e)
        j += 1
        f.folded = 0
        # HCOLON = *( SP / HTAB ) ":" SWS: a fold right after the colon is separator.
        while j < n:
            if _is_ws(p[j]):
                j += 1
            elif p[j] == 13 and j + 2 < n and p[j + 1] == 10 and _is_ws(p[j + 2]):
                j += 3
                f.folded = 1  # the raw field holds a fold even though the value does not
            elif p[j] == 10 and j + 1 < n and _is_ws(p[j + 1]):
                j += 2
                f.folded = 1
            else:
                break
        f.value_s = j
        # The field ends at a line end not followed by SP/HTAB (which would be a fold).
        # Control characters are not hunted here: the fields sipmask reads are checked by
        # their own grammar below, and the rest never crosses to the other leg.
        while True:
            nl = <const uchar*>memchr(p + j, 10, n - j)
            if nl == NULL:
                raise _salvage_error("unterminated header field", 400, p, msg._fields,
                                     msg._nfields, m_s, m_e)
            le = nl - p
            if le + 1 < n and _is_ws(p[le + 1]):
                f.folded = 1
                j = le + 1
                continue
            break
        j = le - 1 if p[le - 1] == 13 else le
        f.raw_e = le + 1
        f.value_e = _rtrim(p, f.value_s, j)
        f.extra = -1
        f.deleted = 0
        f.hid = _field_hid(p + f.name_s, f.name_e - f.name_s)
        msg._nfields += 1
        i = le + 1

    if error is not None:
        raise _salvage_error(error, 400, p, msg._fields, msg._nfields, m_s, m_e)

    # Eager checks of the fields every layer above relies on.
    for k in range(msg._nfields):
        f = &msg._fields[k]
        code = f.hid
        if code == H_VIA:
            if _scan_via_list(p, f.value_s, f.value_e, None) != f.value_e:
                error = "malformed Via"
        elif code == H_FROM or code == H_TO:
            ts = te = -1
            if _scan_name_addr(p, f.value_s, f.value_e, &nas, &us, None, &ts, &te) != f.value_e:
                error = "malformed From" if code == H_FROM else "malformed To"
            elif code == H_FROM and not seen_from:
                seen_from = True
                msg._ftag_s, msg._ftag_e = ts, te
            elif code == H_TO and not seen_to:
                seen_to = True
                msg._ttag_s, msg._ttag_e = ts, te
        elif code == H_CALL_ID:
            if not _call_id_ok(p, f.value_s, f.value_e):
                error = "malformed Call-ID"
        elif code == H_CSEQ:
            if not _scan_cseq(p, f.value_s, f.value_e, &v, &ms, &me):
                error = "malformed CSeq"
            elif cs_f == NULL:
                cs_f = f
                cs_s, cs_e = ms, me
        elif code == H_MAX_FORWARDS:
            if not _number(p, f.value_s, f.value_e, 255, &v):
                error = "malformed Max-Forwards"
        elif code == H_CONTENT_LENGTH:
            if not _number(p, f.value_s, f.value_e, 1 << 40, &v):
                error = "malformed Content-Length"
            elif clen >= 0 and v != clen:
                error = "conflicting Content-Length values"
            else:
                clen = v
        if error is not None:
            raise _salvage_error(error, 400, p, msg._fields, msg._nfields, m_s, m_e)

    if req is not None and cs_f != NULL:
        if cs_e - cs_s != req._m_e - req._m_s or memcmp(p + cs_s, p + req._m_s, cs_e - cs_s) != 0:
            # RFC 4475 §3.1.2.18: 501 for a method we do not know, else 400.
            raise _salvage_error("CSeq method does not match the request method",
                                 400 if req.method in _KNOWN_METHODS else 501, p,
                                 msg._fields, msg._nfields, m_s, m_e)

    msg._tags_cached = True
    # Body: RFC 3261 §18.3 — octets past Content-Length are discarded; fewer is an error.
    msg._body_s = hend
    if clen >= 0:
        if clen > n - hend:
            raise _salvage_error("Content-Length larger than the message", 400, p,
                                 msg._fields, msg._nfields, m_s, m_e)
        msg._body_e = hend + clen
    else:
        msg._body_e = n
    return msg


_KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})


def parse(data, *, Py_ssize_t max_size=DEFAULT_MAX_SIZE, int max_headers=DEFAULT_MAX_HEADERS):
    """Parse one SIP message from a datagram or a frame cut by StreamFramer."""
    cdef bytes src = data if type(data) is bytes else bytes(data)
    if PyBytes_GET_SIZE(src) > max_size:
        raise _too_large(src[:max_size], max_headers)
    return _parse(src, max_headers)


cdef object _too_large(bytes head, int max_headers):
    """A 513 ParseError carrying what the first `max_size` octets give for the answer."""
    cdef Message msg
    try:
        msg = _parse(head, max_headers)
    except ParseError as e:
        return ParseError("message too large", 513, method=e.method, via=e.via,
                          from_=e.from_, to=e.to, call_id=e.call_id, cseq=e.cseq)
    return ParseError("message too large", 513,
                      method=msg.method if msg.is_request else None,
                      via=tuple(msg.headers("via")), from_=msg.header("from"),
                      to=msg.header("to"), call_id=msg.call_id, cseq=msg.header("cseq"))
