# Character classes and grammar scanners of RFC 3261 §25, on raw bytes.
#
# Scanners take (p, i, end) over a byte buffer and return the position after what they read,
# or -1 when the input does not match. They never allocate unless handed a Python container to
# fill, so the same code validates a message eagerly at parse time and builds the typed objects
# when someone asks for them.

ctypedef unsigned char uchar

cdef enum:
    C_ALNUM = 1
    C_TOKEN = 2        # RFC 3261 token
    C_UNRESERVED = 4   # alphanum / mark
    C_USER = 8         # user: unreserved / user-unreserved (escaped handled apart)
    C_PARAM = 16       # paramchar without escaped
    C_HNV = 32         # hname / hvalue without escaped
    C_HOST = 64        # hostname and IPv4 characters (plus '_', seen in the wild)
    C_WORD = 128       # Call-ID word

cdef uchar CLS[256]
cdef uchar LOWER[256]
cdef signed char HEXVAL[256]


cdef void _init_classes():
    cdef int c
    cdef bytes mark = b"-_.!~*'()"
    cdef bytes token_extra = b"-.!%*_+`'~"
    cdef bytes user_extra = b"&=+$,;?/"
    cdef bytes param_extra = b"[]/:&+$"
    cdef bytes hnv_extra = b"[]/?:+$"
    cdef bytes word_extra = b"-.!%*_+`'~()<>:\\\"/[]?{}"
    for c in range(256):
        CLS[c] = 0
        LOWER[c] = c
        HEXVAL[c] = -1
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122):
            CLS[c] |= C_ALNUM | C_TOKEN | C_UNRESERVED | C_USER | C_PARAM | C_HNV | C_HOST | C_WORD
        if 65 <= c <= 90:
            LOWER[c] = c + 32
        if 48 <= c <= 57:
            HEXVAL[c] = c - 48
        elif 97 <= c <= 102:
            HEXVAL[c] = c - 87
        elif 65 <= c <= 70:
            HEXVAL[c] = c - 55
    for c in mark:
        CLS[c] |= C_UNRESERVED | C_USER | C_PARAM | C_HNV
    for c in token_extra:
        CLS[c] |= C_TOKEN
    for c in user_extra:
        CLS[c] |= C_USER
    for c in param_extra:
        CLS[c] |= C_PARAM
    for c in hnv_extra:
        CLS[c] |= C_HNV
    for c in word_extra:
        CLS[c] |= C_WORD
    for c in b"-._":
        CLS[c] |= C_HOST


_init_classes()


cdef inline bint _is_ws(uchar c) noexcept nogil:
    return c == 32 or c == 9


cdef inline bint _is_lws(uchar c) noexcept nogil:
    # Inside a header value a CR or LF is always part of a fold (the field splitter made sure).
    return c == 32 or c == 9 or c == 13 or c == 10


cdef inline Py_ssize_t _sws(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and _is_lws(p[i]):
        i += 1
    return i


cdef inline Py_ssize_t _rtrim(const uchar* p, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    while end > start and _is_lws(p[end - 1]):
        end -= 1
    return end


cdef inline Py_ssize_t _token(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and (CLS[p[i]] & C_TOKEN):
        i += 1
    return i


cdef inline bint _lowercmp(const uchar* a, const uchar* lower, Py_ssize_t n) noexcept nogil:
    """True when token bytes `a` equal the lower-case `lower` ignoring ASCII case. (OR-ing
    0x20 folds letters; no other token character collides with a lower-case name's.)"""
    cdef Py_ssize_t k = 0
    cdef uint64_t wa, wb
    while k + 8 <= n:  # eight bytes at a time: header names are mostly 4 to 20 long
        memcpy(&wa, a + k, 8)
        memcpy(&wb, lower + k, 8)
        if (wa | 0x2020202020202020ULL) != wb:
            return False
        k += 8
    while k < n:
        if (a[k] | 0x20) != lower[k]:
            return False
        k += 1
    return True


cdef inline bint _casecmp(const uchar* a, const uchar* b, Py_ssize_t n) noexcept nogil:
    """True when the n bytes are equal ignoring ASCII case."""
    cdef Py_ssize_t k
    for k in range(n):
        if LOWER[a[k]] != LOWER[b[k]]:
            return False
    return True


cdef inline Py_ssize_t _escaped_run(const uchar* p, Py_ssize_t i, Py_ssize_t end, uchar cls) noexcept nogil:
    """Read characters of class `cls` or %HH escapes; -1 on a broken escape."""
    while i < end:
        if CLS[p[i]] & cls:
            i += 1
        elif p[i] == 37:  # '%'
            if i + 2 >= end or HEXVAL[p[i + 1]] < 0 or HEXVAL[p[i + 2]] < 0:
                return -1
            i += 3
        else:
            break
    return i


cdef inline Py_ssize_t _quoted(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """p[i] is '"': return the position after the closing quote, -1 if unterminated."""
    i += 1
    while i < end:
        if p[i] == 34:
            return i + 1
        if p[i] == 92:  # quoted-pair
            i += 2
            continue
        i += 1
    return -1


cdef inline Py_ssize_t _host(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """hostname / IPv4address / IPv6reference; -1 if empty or malformed."""
    cdef Py_ssize_t start = i
    if i < end and p[i] == 91:  # '['
        i += 1
        while i < end and (HEXVAL[p[i]] >= 0 or p[i] == 58 or p[i] == 46):
            i += 1
        if i >= end or p[i] != 93 or i == start + 1:
            return -1
        return i + 1
    while i < end and (CLS[p[i]] & C_HOST):
        i += 1
    return i if i > start else -1


cdef inline Py_ssize_t _port(const uchar* p, Py_ssize_t i, Py_ssize_t end, int* port) noexcept nogil:
    """1*5DIGIT with a value up to 65535."""
    cdef Py_ssize_t start = i
    cdef int v = 0
    while i < end and 48 <= p[i] <= 57 and i - start < 5:
        v = v * 10 + (p[i] - 48)
        i += 1
    if i == start or v > 65535 or (i < end and 48 <= p[i] <= 57):
        return -1
    port[0] = v
    return i


cdef bint _number(const uchar* p, Py_ssize_t start, Py_ssize_t end, long long limit,
                  long long* out) noexcept nogil:
    """1*DIGIT no larger than `limit` (no sign, no overflow)."""
    cdef long long v = 0
    cdef Py_ssize_t i
    if start >= end or end - start > 18:
        return False
    for i in range(start, end):
        if not (48 <= p[i] <= 57):
            return False
        v = v * 10 + (p[i] - 48)
    if v > limit:
        return False
    out[0] = v
    return True


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object unicode)


cdef inline str _decode(const uchar* p, Py_ssize_t start, Py_ssize_t end):
    """UTF-8 with surrogateescape; ASCII (nearly every SIP value) is copied straight in."""
    cdef Py_ssize_t k
    cdef uchar seen = 0
    cdef object text
    for k in range(start, end):
        seen |= p[k]
    if seen < 128:
        text = PyUnicode_New(end - start, 127)
        memcpy(PyUnicode_DATA(text), p + start, end - start)
        return text
    return PyUnicode_DecodeUTF8(<const char*>p + start, end - start, "surrogateescape")


cdef str _decode_unfolded(const uchar* p, Py_ssize_t start, Py_ssize_t end):
    """Decode a value whose folds (CRLF + whitespace) become one space (RFC 3261 §7.3.1)."""
    cdef bytearray out = bytearray()
    cdef Py_ssize_t i = start
    cdef Py_ssize_t j
    while i < end:
        if p[i] == 13 or p[i] == 10:
            # drop whitespace already written before the line break
            while len(out) and (out[len(out) - 1] == 32 or out[len(out) - 1] == 9):
                del out[len(out) - 1]
            j = i
            while j < end and _is_lws(p[j]):
                j += 1
            out.append(32)
            i = j
        else:
            out.append(p[i])
            i += 1
    return bytes(out).decode("utf-8", "surrogateescape")


cdef inline Py_ssize_t _gen_value(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """gen-value = token / host / quoted-string."""
    cdef Py_ssize_t start = i
    if i < end and p[i] == 34:
        return _quoted(p, i, end)
    if i < end and p[i] == 91:
        return _host(p, i, end)
    while i < end and ((CLS[p[i]] & C_TOKEN) or p[i] == 58):
        i += 1
    return i if i > start else -1


cdef Py_ssize_t _header_params(const uchar* p, Py_ssize_t i, Py_ssize_t end, dict out,
                               Py_ssize_t* tag_s, Py_ssize_t* tag_e) except -2:
    """*( SEMI generic-param ) for header fields (From/To/Contact/Via); stops before ',' or at
    the end. Fills `out` (names lower-cased) when given, and the span of a `tag` value."""
    cdef Py_ssize_t ns, ne, vs, ve
    cdef int port
    while True:
        i = _sws(p, i, end)
        if i >= end or p[i] != 59:  # ';'
            return i
        i = _sws(p, i + 1, end)
        ns = i
        i = _token(p, i, end)
        ne = i
        if ne == ns:
            return -1
        i = _sws(p, i, end)
        vs = ve = -1
        if i < end and p[i] == 61:  # '='
            i = _sws(p, i + 1, end)
            vs = i
            i = _gen_value(p, i, end)
            if i < 0:
                return -1
            ve = i
        if vs >= 0 and ne - ns == 5 and _casecmp(p + ns, <const uchar*>b"rport", 5):
            # RFC 3581: rport carries a port number
            if _port(p, vs, ve, &port) != ve:
                return -1
        if tag_s != NULL and ne - ns == 3 and _casecmp(p + ns, <const uchar*>b"tag", 3):
            if vs < 0:
                return -1
            tag_s[0] = vs
            tag_e[0] = ve
        if out is not None:
            out[_decode(p, ns, ne).lower()] = None if vs < 0 else _decode(p, vs, ve)


cdef Py_ssize_t _list_next(const uchar* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """End of the list element starting at i: the next ',' outside quotes and <...>."""
    cdef int angle = 0
    while i < end:
        if p[i] == 34:
            i = _quoted(p, i, end)
            if i < 0:
                return end
            continue
        if p[i] == 60:
            angle += 1
        elif p[i] == 62 and angle > 0:
            angle -= 1
        elif p[i] == 44 and angle == 0:
            return i
        i += 1
    return end


cdef list _split_list(const uchar* p, Py_ssize_t start, Py_ssize_t end, bint folded):
    """Split a comma-separated header value into trimmed str elements (empty ones skipped)."""
    cdef list out = []
    cdef Py_ssize_t i = start
    cdef Py_ssize_t e, s, t
    while i < end:
        e = _list_next(p, i, end)
        s = _sws(p, i, e)
        t = _rtrim(p, s, e)
        if t > s:
            out.append(_decode_unfolded(p, s, t) if folded else _decode(p, s, t))
        i = e + 1
    return out


cdef str _first_element(const uchar* p, Py_ssize_t start, Py_ssize_t end, bint folded):
    """The first non-empty element of a comma-separated value ('' when there is none),
    without splitting the rest."""
    cdef Py_ssize_t i = start
    cdef Py_ssize_t e, s, t
    while i < end:
        e = _list_next(p, i, end)
        s = _sws(p, i, e)
        t = _rtrim(p, s, e)
        if t > s:
            return _decode_unfolded(p, s, t) if folded else _decode(p, s, t)
        i = e + 1
    return ""
