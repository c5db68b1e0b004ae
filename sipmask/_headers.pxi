# Known header names: ids for fast matching, compact forms (RFC 3261 §7.3.3 and the IANA
# registry) and which ones are comma-separated lists (RFC 3261 §7.3.1).

cdef enum:
    H_OTHER = 0
    H_VIA = 1
    H_FROM = 2
    H_TO = 3
    H_CALL_ID = 4
    H_CSEQ = 5
    H_CONTACT = 6
    H_MAX_FORWARDS = 7
    H_CONTENT_LENGTH = 8
    H_CONTENT_TYPE = 9

# (canonical name, compact form, comma-separated list); the position + 1 is the header id, so
# the first entries match the enum above.
_HEADER_TABLE = [
    ("Via", "v", True),
    ("From", "f", False),
    ("To", "t", False),
    ("Call-ID", "i", False),
    ("CSeq", None, False),
    ("Contact", "m", True),
    ("Max-Forwards", None, False),
    ("Content-Length", "l", False),
    ("Content-Type", "c", False),
    ("Route", None, True),
    ("Record-Route", None, True),
    ("Supported", "k", True),
    ("Require", None, True),
    ("Proxy-Require", None, True),
    ("Unsupported", None, True),
    ("Allow", None, True),
    ("Accept", None, True),
    ("Accept-Encoding", None, True),
    ("Accept-Language", None, True),
    ("Content-Encoding", "e", True),
    ("Content-Language", None, True),
    ("Allow-Events", "u", True),
    ("Event", "o", False),
    ("Subject", "s", False),
    ("Refer-To", "r", False),
    ("Referred-By", "b", False),
    ("Session-Expires", "x", False),
    ("Identity", "y", False),
    ("Accept-Contact", "a", True),
    ("Reject-Contact", "j", True),
    ("Request-Disposition", "d", True),
    ("Identity-Info", "n", False),
    ("Expires", None, False),
    ("Min-Expires", None, False),
    ("Alert-Info", None, True),
    ("Call-Info", None, True),
    ("Error-Info", None, True),
    ("In-Reply-To", None, True),
    ("Warning", None, True),
    ("Path", None, True),
    ("Service-Route", None, True),
    ("P-Asserted-Identity", None, True),
    ("P-Preferred-Identity", None, True),
    ("History-Info", None, True),
    ("Diversion", None, True),
    ("Reason", None, True),
    ("Remote-Party-ID", None, True),
    ("Privacy", None, False),
    ("WWW-Authenticate", None, False),
    ("Authorization", None, False),
    ("Proxy-Authenticate", None, False),
    ("Proxy-Authorization", None, False),
    ("RAck", None, False),
    ("RSeq", None, False),
    ("Min-SE", None, False),
    ("User-Agent", None, False),
    ("Server", None, False),
    ("Date", None, False),
    ("Timestamp", None, False),
    ("Organization", None, False),
    ("Priority", None, False),
    ("Retry-After", None, False),
    ("Content-Disposition", None, False),
    ("MIME-Version", None, False),
    ("Reply-To", None, False),
    ("Security-Client", None, True),
    ("Security-Server", None, True),
    ("Security-Verify", None, True),
    ("P-Associated-URI", None, True),
    ("Geolocation", None, True),
]

cdef enum:
    MAX_NAMES = 96

cdef struct NameEntry:
    const char* name     # lower-case
    int length
    int hid

cdef enum:
    HASH_SIZE = 512

cdef NameEntry _NAMES[MAX_NAMES]
cdef short _HASH[HASH_SIZE]           # open addressing: index into _NAMES + 1, 0 = empty
cdef int _COMPACT[26]
cdef bint _IS_LIST[MAX_NAMES]
cdef list _NAME_KEEPALIVE = []        # owns the bytes the C table points into
cdef dict _QUERY_HID = {}             # lower-case name or compact form -> id
cdef list _CANONICAL = [None]         # id -> canonical name


cdef inline unsigned int _name_hash(const uchar* p, Py_ssize_t n) noexcept nogil:
    return (<unsigned int>n * 31 + LOWER[p[0]] * 7 + LOWER[p[n - 1]] * 3 + LOWER[p[n >> 1]]) & (
        HASH_SIZE - 1)


cdef void _init_headers():
    cdef int k, hid, n = 0
    cdef unsigned int h
    cdef bytes lname
    for k in range(HASH_SIZE):
        _HASH[k] = 0
    for k in range(26):
        _COMPACT[k] = 0
    for k, (name, compact, is_list) in enumerate(_HEADER_TABLE):
        hid = k + 1
        _CANONICAL.append(name)
        _IS_LIST[hid] = is_list
        _QUERY_HID[name.lower()] = hid
        if compact is not None:
            _QUERY_HID[compact] = hid
            _COMPACT[ord(compact) - 97] = hid
        lname = name.lower().encode()
        _NAME_KEEPALIVE.append(lname)
        _NAMES[n].name = PyBytes_AS_STRING(lname)
        _NAMES[n].length = len(lname)
        _NAMES[n].hid = hid
        h = _name_hash(<const uchar*>_NAMES[n].name, len(lname))
        while _HASH[h]:
            h = (h + 1) & (HASH_SIZE - 1)
        _HASH[h] = n + 1
        n += 1
    _IS_LIST[0] = False


_init_headers()


cdef int _field_hid(const uchar* p, Py_ssize_t n) noexcept nogil:
    """Header id of a field name as on the wire (any case, compact forms); 0 if unknown."""
    cdef int c
    cdef unsigned int h
    cdef NameEntry* e
    if n == 1:
        c = LOWER[p[0]] - 97
        return _COMPACT[c] if 0 <= c < 26 else H_OTHER
    h = _name_hash(p, n)
    while _HASH[h]:
        e = &_NAMES[_HASH[h] - 1]
        if e.length == n and _lowercmp(p, <const uchar*>e.name, n):
            return e.hid
        h = (h + 1) & (HASH_SIZE - 1)
    return H_OTHER


cdef struct Query:
    const uchar* p      # the name asked for, as UTF-8 (borrowed from the str)
    Py_ssize_t n
    int hid


cdef inline int _query(str name, Query* q) except -1:
    """Resolve a header name asked for by code (any case, compact forms) with the same C
    table the parser uses: no dict, no lower-cased copy."""
    q.p = <const uchar*>PyUnicode_AsUTF8AndSize(name, &q.n)
    q.hid = _field_hid(q.p, q.n) if q.n else H_OTHER
    return 0
