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


# --- the grammar rebuild (hot path: once per offer/answer per leg) -----------------------------
#
# Every line that crosses is rebuilt from its grammar, with a range for each number, so a peer
# cannot carry a number in a value the allow-list keeps (issue 11). A kept value holds at most
# three digits the peer chose freely (two, then zeros, for the rounded ones), except the values the two ends need as they are while
# media is not anchored: media addresses and ports (c=, m=, a=rtcp), SRTP keys (a=crypto) and
# DTLS fingerprints (docs/b2bua.md, "Residual channels").

cdef extern from "arpa/inet.h" nogil:
    int inet_pton(int af, const char* src, void* dst)

cdef extern from "sys/socket.h" nogil:
    int AF_INET
    int AF_INET6

# Transport protocols (RFC 4566 §5.14 and its registry), as written on the way out.
_SDP_PROTOS = {p.lower().encode(): p.encode() for p in (
    "RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF",
    "TCP/RTP/AVP", "udptl", "TCP/MSRP", "TCP/TLS/MSRP", "TCP/BFCP", "TCP/TLS/BFCP", "UDP/BFCP",
)}
_SDP_MEDIA = {m: m for m in (b"audio", b"video", b"text", b"application", b"message", b"image")}
# Formats of the non-RTP protocols: T.38 over UDPTL, `*` for MSRP and BFCP.
_OTHER_FORMATS = frozenset({b"t38", b"*"})

cdef enum:
    F_NONE = 0
    F_EVENTS = 1
    F_OPUS = 2
    F_AMR = 3
    F_H264 = 4
    F_VPX = 5
    F_G729 = 6
    F_ILBC = 7
    F_G7221 = 8

# Known codecs: lower-case encoding name -> (name as written, clock rates, most channels,
# fmtp grammar). An rtpmap naming anything else, or another rate, does not cross.
_CODECS = {
    b"pcmu": (b"PCMU", (8000,), 1, F_NONE),
    b"pcma": (b"PCMA", (8000,), 1, F_NONE),
    b"g722": (b"G722", (8000,), 1, F_NONE),
    b"g723": (b"G723", (8000,), 1, F_NONE),
    b"g728": (b"G728", (8000,), 1, F_NONE),
    b"g729": (b"G729", (8000,), 1, F_G729),
    b"g726-16": (b"G726-16", (8000,), 1, F_NONE),
    b"g726-24": (b"G726-24", (8000,), 1, F_NONE),
    b"g726-32": (b"G726-32", (8000,), 1, F_NONE),
    b"g726-40": (b"G726-40", (8000,), 1, F_NONE),
    b"gsm": (b"GSM", (8000,), 1, F_NONE),
    b"dvi4": (b"DVI4", (8000, 11025, 16000, 22050), 1, F_NONE),
    b"lpc": (b"LPC", (8000,), 1, F_NONE),
    b"qcelp": (b"QCELP", (8000,), 1, F_NONE),
    b"l16": (b"L16", (8000, 16000, 32000, 44100, 48000), 2, F_NONE),
    b"cn": (b"CN", (8000, 16000, 32000, 48000), 1, F_NONE),
    b"ilbc": (b"iLBC", (8000,), 1, F_ILBC),
    b"speex": (b"speex", (8000, 16000, 32000), 1, F_NONE),
    b"amr": (b"AMR", (8000,), 1, F_AMR),
    b"amr-wb": (b"AMR-WB", (16000,), 1, F_AMR),
    b"evs": (b"EVS", (16000,), 1, F_NONE),
    b"g7221": (b"G7221", (16000, 32000), 1, F_G7221),
    b"opus": (b"opus", (48000,), 2, F_OPUS),
    b"telephone-event": (b"telephone-event", (8000, 16000, 48000), 1, F_EVENTS),
    b"t140": (b"t140", (1000,), 1, F_NONE),
    b"mpa": (b"MPA", (90000,), 1, F_NONE),
    b"celb": (b"CelB", (90000,), 1, F_NONE),
    b"jpeg": (b"JPEG", (90000,), 1, F_NONE),
    b"nv": (b"nv", (90000,), 1, F_NONE),
    b"h261": (b"H261", (90000,), 1, F_NONE),
    b"mpv": (b"MPV", (90000,), 1, F_NONE),
    b"mp2t": (b"MP2T", (90000,), 1, F_NONE),
    b"h263": (b"H263", (90000,), 1, F_NONE),
    b"h263-1998": (b"H263-1998", (90000,), 1, F_NONE),
    b"h263-2000": (b"H263-2000", (90000,), 1, F_NONE),
    b"h264": (b"H264", (90000,), 1, F_H264),
    b"h265": (b"H265", (90000,), 1, F_NONE),
    b"vp8": (b"VP8", (90000,), 1, F_VPX),
    b"vp9": (b"VP9", (90000,), 1, F_VPX),
    b"av1": (b"AV1", (90000,), 1, F_NONE),
}

# RFC 3551 §6, tables 4 and 5: the static payload types that are assigned (the others, and
# the reserved ones, do not cross) with their codec and clock rate.
_STATIC_TYPES = {
    0: (b"pcmu", 8000), 3: (b"gsm", 8000), 4: (b"g723", 8000), 5: (b"dvi4", 8000),
    6: (b"dvi4", 16000), 7: (b"lpc", 8000), 8: (b"pcma", 8000), 9: (b"g722", 8000),
    10: (b"l16", 44100), 11: (b"l16", 44100), 12: (b"qcelp", 8000), 13: (b"cn", 8000),
    14: (b"mpa", 90000), 15: (b"g728", 8000), 16: (b"dvi4", 11025), 17: (b"dvi4", 22050),
    18: (b"g729", 8000), 25: (b"celb", 90000), 26: (b"jpeg", 90000), 28: (b"nv", 90000),
    31: (b"h261", 90000), 32: (b"mpv", 90000), 33: (b"mp2t", 90000), 34: (b"h263", 90000),
}
cdef signed char STATIC_FMTP[128]   # fmtp grammar of an assigned static type, -1 unassigned
cdef uchar STATIC_MEDIA[128]        # 1: an audio type (table 4), 2: video (table 5), 3: both

cdef enum:
    MEDIA_AUDIO = 1
    MEDIA_VIDEO = 2


cdef void _init_static():
    cdef int pt
    for pt in range(128):
        STATIC_FMTP[pt] = -1
        STATIC_MEDIA[pt] = 0
    for pt, (name, rate) in _STATIC_TYPES.items():
        STATIC_FMTP[pt] = _CODECS[name][3]
        STATIC_MEDIA[pt] = MEDIA_VIDEO if rate == 90000 and name != b"mpa" else MEDIA_AUDIO
    STATIC_MEDIA[33] = MEDIA_AUDIO | MEDIA_VIDEO  # MP2T is audio/video


_init_static()

MAX_PAIRED_MEDIA = 16
"""m= lines a paired leg renumbers; a description with more is refused (bounds the state)."""


cdef class PayloadTypes:
    """The dynamic payload type numbers (96-127) of two paired legs, per m= line.

    A one-to-one map between the numbers each side uses, filled from 96 upward as numbers
    appear, so the peer's choice of numbers never crosses, and an answer gets back the
    numbers of the offer its leg received (RFC 3264 §6.1)."""

    cdef list maps   # maps[side][m index]: {number on `side`: number on the other side}

    def __cinit__(self):
        self.maps = [[], []]

    cdef int number(self, int side, int index, int pt) except -1:
        """The number on `side` for `pt`, the other side's number in m= line `index`."""
        cdef list mine = self.maps[side]
        cdef list theirs = self.maps[1 - side]
        cdef dict forward, backward
        cdef int n
        while len(mine) <= index:
            mine.append({})
            theirs.append({})
        forward = theirs[index]
        backward = mine[index]
        found = forward.get(pt)
        if found is not None:
            return found
        n = 96  # a pt new to the map leaves a free number: each side has 32 and the map is 1:1
        while n in backward:
            n += 1
        forward[pt] = n
        backward[n] = pt
        return n


cdef struct Out:
    char* buf
    Py_ssize_t n
    Py_ssize_t cap


cdef struct Line:
    uchar kind
    Py_ssize_t s       # value start (after `x=`)
    Py_ssize_t e       # value end (line end without CR)


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


cdef inline int _put_bytes(Out* o, bytes b) except -1:
    return _put(o, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef int _put_int(Out* o, long long v) except -1:
    """Write a non-negative integer in decimal."""
    cdef char digits[24]
    cdef int k = 24
    while True:
        k -= 1
        digits[k] = 48 + v % 10
        v //= 10
        if v == 0:
            break
    return _put(o, digits + k, 24 - k)


cdef inline int _put_line(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e) except -1:
    _put(o, p + s, e - s)
    _put(o, b"\r\n", 2)
    return 0


cdef bint _ip_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e, bint ip6) noexcept nogil:
    """An IPv4 (dotted quad) or IPv6 literal, as inet_pton reads it: no names, no free text."""
    cdef char text[48]
    cdef uchar addr[16]
    if s >= e or e - s > 45:
        return False
    memcpy(text, p + s, e - s)
    text[e - s] = 0
    return inet_pton(AF_INET6 if ip6 else AF_INET, text, addr) == 1


cdef Py_ssize_t _c_address(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """Start of the address in a c= value `IN IP4 <addr>` / `IN IP6 <addr>`, or -1."""
    if (e - s < 8 or p[s] != 73 or p[s + 1] != 78 or p[s + 2] != 32 or p[s + 3] != 73
            or p[s + 4] != 80 or (p[s + 5] != 52 and p[s + 5] != 54) or p[s + 6] != 32):
        return -1
    return s + 7


cdef bint _connection_ok(const uchar* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """c=IN IP4|IP6 <literal>[/<ttl or count, 0-255>] (RFC 4566 §5.7)."""
    cdef Py_ssize_t k = _c_address(p, s, e), slash
    cdef long long ttl
    if k < 0:
        return False
    slash = k
    while slash < e and p[slash] != 47:
        slash += 1
    if slash < e and not _number(p, slash + 1, e, 255, &ttl):
        return False
    return _ip_ok(p, k, slash, p[s + 5] == 54)


cdef inline long long _round2(long long v) noexcept nogil:
    """`v` rounded down to two significant digits: a range, not a free number (a value of
    four digits or more could carry a piece of a number)."""
    cdef long long scale = 1
    while v >= 100 * scale:
        scale *= 10
    return v // scale * scale


cdef int _bandwidth(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e) except -1:
    """Write b=AS|CT:<kbit/s> or b=TIAS:<bit/s> (RFC 4566 §5.8, RFC 3890), the value in range
    and rounded down to two significant digits; nothing for anything else."""
    cdef Py_ssize_t colon = s
    cdef long long v
    while colon < e and p[colon] != 58:
        colon += 1
    if colon - s == 2 and LOWER[p[s]] == 97 and LOWER[p[s + 1]] == 115:
        if _number(p, colon + 1, e, 100_000, &v) and v > 0:
            _put(o, b"b=AS:", 5)
        else:
            return 0
    elif colon - s == 2 and LOWER[p[s]] == 99 and LOWER[p[s + 1]] == 116:
        if _number(p, colon + 1, e, 100_000, &v) and v > 0:
            _put(o, b"b=CT:", 5)
        else:
            return 0
    elif colon - s == 4 and _lowercmp(p + s, <const uchar*>b"tias", 4):
        if _number(p, colon + 1, e, 100_000_000, &v) and v > 0:
            _put(o, b"b=TIAS:", 7)
        else:
            return 0
    else:
        return 0
    _put_int(o, _round2(v))
    return _put(o, b"\r\n", 2)


# `encoding/rate[/channels]` as peers write it, lower-cased -> (as written on the way out, fmtp
# grammar). RFC 7587 §7: opus is always opus/48000/2.
_RTPMAP_FORMS = {}
for _name, (_written, _rates, _channels, _grammar) in _CODECS.items():
    for _rate in _rates:
        _canonical = b"%s/%d" % (_written, _rate)
        if _name == b"opus":
            _RTPMAP_FORMS[b"opus/48000/2"] = (b"opus/48000/2", _grammar)
            continue
        _RTPMAP_FORMS[b"%s/%d" % (_name, _rate)] = (_canonical, _grammar)
        _RTPMAP_FORMS[b"%s/%d/1" % (_name, _rate)] = (_canonical, _grammar)
        for _n in range(2, _channels + 1):
            _RTPMAP_FORMS[b"%s/%d/%d" % (_name, _rate, _n)] = (
                b"%s/%d/%d" % (_written, _rate, _n), _grammar)
_STATIC_RTPMAP = {pt: b"%s/%d" % (_CODECS[name][0], rate)
                  for pt, (name, rate) in _STATIC_TYPES.items()}
_PT_TEXT = [b"%d" % _pt for _pt in range(128)]


cdef void* _rtpmap(const uchar* p, Py_ssize_t s, Py_ssize_t e, long long* pt) except? NULL:
    """`<pt> <encoding>/<rate>[/<channels>]` of a known codec at its real rate: its entry of
    `_RTPMAP_FORMS` (a constant, so borrowed) and `pt`; else NULL."""
    cdef Py_ssize_t k = s
    while k < e and p[k] != 32:
        k += 1
    if not _number(p, s, k, 127, pt) or k >= e or e - k > 32:
        return NULL
    cdef char lowered[32]
    cdef Py_ssize_t i
    for i in range(k + 1, e):
        lowered[i - k - 1] = LOWER[p[i]]
    form = _RTPMAP_FORMS.get(PyBytes_FromStringAndSize(lowered, e - k - 1))
    if form is None:
        return NULL
    if pt[0] < 96 and _STATIC_RTPMAP.get(pt[0]) != (<tuple>form)[0]:
        return NULL  # an assigned type means its own codec (RFC 3551 §6)
    return <void*>form


cdef inline int _put_pt(Out* o, int pt) except -1:
    return _put_bytes(o, <bytes>_PT_TEXT[pt])


# --- fmtp parameter grammars (RFC 4733, 7587, 4867, 6184, 7741, 7587; G.729 annex B) --------

cdef object _int_in(str text, long long lo, long long hi):
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    cdef long long v = int(text)
    return v if lo <= v <= hi else None


cdef str _events(str text):
    """telephone-event events (RFC 4733 §2.4.1): up to 8 items, each `n` or `n-m`, 0-16."""
    cdef list out = []
    cdef str item, a, b
    for item in text.split(","):
        a, dash, b = item.strip().partition("-")
        lo = _int_in(a, 0, 16)
        if lo is None:
            return None
        if dash:
            hi = _int_in(b, 0, 16)
            if hi is None or hi <= lo:
                return None
            out.append("%d-%d" % (lo, hi))
        else:
            out.append("%d" % lo)
    return ",".join(out) if 0 < len(out) <= 8 else None


cdef str _mode_set(str text, int top):
    """AMR mode-set (RFC 4867 §8.1): distinct modes 0-7 (AMR-WB: 0-8), in order."""
    seen = []
    for item in text.split(","):
        v = _int_in(item.strip(), 0, top)
        if v is None or v in seen:
            return None
        seen.append(v)
    return ",".join(str(v) for v in sorted(seen))


_H264_PROFILES = frozenset({"42", "4d", "58", "64", "6e", "7a", "f4", "2c", "53", "56"})
_H264_LEVELS = frozenset({"0a", "0b", "0c", "0d", "14", "15", "16", "1e", "1f", "20", "28",
                          "29", "2a", "32", "33", "34", "3c", "3d", "3e"})


cdef str _profile_level_id(str text):
    """H.264 profile-level-id (RFC 6184 §8.1): a known profile_idc, the constraint byte and
    a known level_idc, six hex digits."""
    text = text.lower()
    if (len(text) != 6 or text[:2] not in _H264_PROFILES or text[4:] not in _H264_LEVELS
            or any(c not in "0123456789abcdef" for c in text[2:4])):
        return None
    return text


# Per grammar: parameter name -> (lowest, highest, rounded) for numbers, or the set of the
# values it may take, or a function for the structured ones.
_BIT = (0, 1, False)
_FMTP_PARAMS = {
    F_OPUS: {
        "maxplaybackrate": (8000, 48000, True), "sprop-maxcapturerate": (8000, 48000, True),
        "maxaveragebitrate": (6000, 510000, True), "minptime": (3, 120, False),
        "maxptime": (3, 120, False), "ptime": (3, 120, False), "stereo": _BIT,
        "sprop-stereo": _BIT, "cbr": _BIT, "useinbandfec": _BIT, "usedtx": _BIT,
    },
    F_AMR: {
        "octet-align": _BIT, "mode-change-period": (1, 2, False),
        "mode-change-capability": (1, 2, False), "mode-change-neighbor": _BIT, "crc": _BIT,
        "robust-sorting": _BIT, "max-red": (0, 1000, False), "mode-set": "mode-set",
    },
    F_H264: {
        "profile-level-id": "profile-level-id", "packetization-mode": (0, 2, False),
        "level-asymmetry-allowed": _BIT, "max-mbps": (1, 100_000_000, True),
        "max-smbps": (1, 100_000_000, True), "max-fs": (1, 100_000_000, True),
        "max-cpb": (1, 100_000_000, True), "max-dpb": (1, 100_000_000, True),
        "max-br": (1, 100_000_000, True),
    },
    F_VPX: {"max-fr": (1, 120, False), "max-fs": (1, 10_000_000, True),
            "profile-id": (0, 3, False)},
    F_G729: {"annexb": frozenset({"yes", "no"})},
    F_ILBC: {"mode": frozenset({"20", "30"})},
    F_G7221: {"bitrate": frozenset({"24000", "32000", "48000"})},
}


cdef str _fmtp_params(int grammar, str text):
    """The fmtp parameters of a codec rebuilt from its grammar: known names with values in
    range, once each; None when none is left (the line is dropped)."""
    if grammar == F_EVENTS:
        return _events(text)
    cdef dict known = _FMTP_PARAMS.get(grammar)
    if known is None:
        return None
    cdef list out = []
    cdef list names = []
    cdef str item, key, value
    for item in text.split(";"):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        rule = known.get(key)
        if rule is None or not eq or key in names:
            continue
        if type(rule) is tuple:
            v = _int_in(value, rule[0], rule[1])
            if v is None:
                continue
            value = "%d" % (_round2(v) if rule[2] else v)
        elif type(rule) is frozenset:
            value = value.lower()
            if value not in rule:
                continue
        elif rule == "mode-set":
            value = _mode_set(value, 8)
        else:
            value = _profile_level_id(value)
        if value is None:
            continue
        names.append(key)
        out.append(key + "=" + value)
    return ";".join(out) if out else None


_FMTP_CACHE = {}
_FMTP_CACHE_SIZE = 512


cdef bytes _fmtp_cached(int grammar, bytes params):
    """`_fmtp_params` remembered: the same few fmtp lines come in nearly every offer. A pure
    function's memo, emptied when full, so a peer sending junk only makes it slower."""
    key = (grammar, params)
    found = _FMTP_CACHE.get(key, False)
    if found is not False:
        return found
    rebuilt = _fmtp_params(grammar, params.decode("utf-8", "surrogateescape"))
    out = rebuilt.encode() if rebuilt is not None else None
    if len(_FMTP_CACHE) >= _FMTP_CACHE_SIZE:
        _FMTP_CACHE.clear()
    _FMTP_CACHE[key] = out
    return out


# --- attributes ----------------------------------------------------------------------------

cdef enum:
    A_FLAG = 1
    A_RTPMAP = 2
    A_FMTP = 3
    A_PTIME = 4
    A_MAXPTIME = 5
    A_FRAMERATE = 6
    A_RTCP = 7
    A_RTCP_FB = 8
    A_SILENCE = 9
    A_CRYPTO = 10
    A_FINGERPRINT = 11
    A_SETUP = 12
    A_CONNECTION = 13

# Attributes with a grammar sipmask checks (DEFAULT_SDP_ATTRIBUTES is this set); an allowed name without one never crosses.
_ATTRIBUTE_KINDS = {
    "sendrecv": A_FLAG, "sendonly": A_FLAG, "recvonly": A_FLAG, "inactive": A_FLAG,
    "rtcp-mux": A_FLAG, "rtpmap": A_RTPMAP, "fmtp": A_FMTP, "ptime": A_PTIME,
    "maxptime": A_MAXPTIME, "framerate": A_FRAMERATE, "rtcp": A_RTCP, "rtcp-fb": A_RTCP_FB,
    "silencesupp": A_SILENCE, "crypto": A_CRYPTO, "fingerprint": A_FINGERPRINT,
    "setup": A_SETUP, "connection": A_CONNECTION,
}
cdef int _attribute_kind(const char* name, Py_ssize_t n) noexcept nogil:
    """The grammar of a lower-cased attribute name (the keys of `_ATTRIBUTE_KINDS`), 0 for
    none, without making a Python object for it."""
    cdef const char* known
    cdef int k
    for k in range(ATTRIBUTE_COUNT):
        known = ATTRIBUTE_NAMES[k]
        if ATTRIBUTE_LENGTHS[k] == n and memcmp(known, name, n) == 0:
            return ATTRIBUTE_KIND_OF[k]
    return 0


cdef enum:
    ATTRIBUTE_COUNT = 17
cdef const char* ATTRIBUTE_NAMES[ATTRIBUTE_COUNT]
cdef Py_ssize_t ATTRIBUTE_LENGTHS[ATTRIBUTE_COUNT]
cdef int ATTRIBUTE_KIND_OF[ATTRIBUTE_COUNT]
_ATTRIBUTE_NAME_BYTES = [name.encode() for name in _ATTRIBUTE_KINDS]  # keeps the C strings alive


cdef void _init_attribute_names():
    cdef int k
    cdef bytes name
    for k, name in enumerate(_ATTRIBUTE_NAME_BYTES):
        ATTRIBUTE_NAMES[k] = PyBytes_AS_STRING(name)
        ATTRIBUTE_LENGTHS[k] = len(name)
        ATTRIBUTE_KIND_OF[k] = _ATTRIBUTE_KINDS[name.decode()]


_init_attribute_names()
_SETUP = frozenset({"actpass", "active", "passive", "holdconn"})
_CONNECTION = frozenset({"new", "existing"})
_FRAMERATES = frozenset({"23.976", "23.98", "29.97", "59.94"})
_RTCP_FB = {"ack": frozenset({"rpsi", "app"}), "nack": frozenset({"", "pli", "sli", "rpsi"}),
            "ccm": frozenset({"fir", "tmmbr", "tstr", "vbcm"}), "goog-remb": frozenset({""}),
            "transport-cc": frozenset({""})}
_CRYPTO_SUITES = frozenset({
    "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AES_192_CM_HMAC_SHA1_80",
    "AES_192_CM_HMAC_SHA1_32", "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32",
    "F8_128_HMAC_SHA1_80", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM",
})
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_FINGERPRINT_SIZES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}


cdef str _crypto(str value):
    """SDES (RFC 4568 §9.1) `<tag> <suite> inline:<key||salt>[|2^<n>][|<mki>:<length>]`,
    session parameters dropped. The key is opaque: a residual channel while media is not
    anchored."""
    cdef list parts = value.split(" ")
    if len(parts) < 3 or _int_in(parts[0], 0, 999) is None or parts[1] not in _CRYPTO_SUITES:
        return None
    key_params = parts[2].split(";", 1)[0]
    if not key_params.startswith("inline:"):
        return None
    fields = key_params[7:].split("|")
    key = fields[0]
    if not 16 <= len(key) <= 128 or any(c not in _BASE64 for c in key):
        return None
    out = ["%d %s inline:%s" % (int(parts[0]), parts[1], key)]
    for extra in fields[1:3]:
        if extra.startswith("2^") and _int_in(extra[2:], 1, 64) is not None:
            out.append("2^%d" % int(extra[2:]))
        else:
            mki, colon, size = extra.partition(":")
            if colon and _int_in(mki, 0, 255) is not None and _int_in(size, 1, 4) is not None:
                out.append("%d:%d" % (int(mki), int(size)))
    return "|".join(out)


cdef str _fingerprint(str value):
    """DTLS fingerprint (RFC 8122 §5): a known hash and its size in hex pairs. Opaque: a
    residual channel while media is not anchored."""
    hash_name, _, hexes = value.partition(" ")
    size = _FINGERPRINT_SIZES.get(hash_name.lower())
    pairs = hexes.strip().upper().split(":")
    if size is None or len(pairs) != size or any(
            len(h) != 2 or any(c not in "0123456789ABCDEF" for c in h) for h in pairs):
        return None
    return hash_name.lower() + " " + ":".join(pairs)


cdef int _write_attribute(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e, frozenset allowed,
                    bint in_media, void** forms, const int* newpt, bint* rtpmap_done
                    ) except -1:
    """Write the a= line p[s:e] (after `a=`) rebuilt from its grammar, or nothing."""
    cdef char name[32]
    cdef Py_ssize_t ne = s, vs
    cdef long long v, pt
    cdef int kind
    cdef str text, rebuilt
    while ne < e and p[ne] != 58 and ne - s < 31:
        name[ne - s] = LOWER[p[ne]]
        ne += 1
    if ne < e and p[ne] != 58:
        return 0
    kind = _attribute_kind(name, ne - s)
    if kind == 0 or (allowed is not DEFAULT_SDP_ATTRIBUTES
                     and PyUnicode_DecodeASCII(name, ne - s, "replace") not in allowed):
        return 0
    vs = ne + 1
    if kind == A_FLAG:
        if ne == e:
            _put(o, b"a=", 2)
            _put(o, name, ne - s)
            _put(o, b"\r\n", 2)
        return 0
    if ne == e:
        return 0
    if kind == A_PTIME or kind == A_MAXPTIME:
        if _number(p, vs, e, 200 if kind == A_PTIME else 300, &v) and v > 0:
            if kind == A_PTIME:
                _put(o, b"a=ptime:", 8)
            else:
                _put(o, b"a=maxptime:", 11)
            _put_int(o, v)
            _put(o, b"\r\n", 2)
        return 0
    if kind == A_RTCP and _number(p, vs, e, 65535, &v):  # the usual port-only form
        _put(o, b"a=rtcp:", 7)
        _put_int(o, v)
        return _put(o, b"\r\n", 2)
    if kind == A_SILENCE:
        if e - vs >= 3 and _lowercmp(p + vs, <const uchar*>b"off", 3) and (
                e - vs == 3 or p[vs + 3] == 32):
            _put(o, b"a=silenceSupp:off - - - -\r\n", 27)
        elif e - vs >= 2 and _lowercmp(p + vs, <const uchar*>b"on", 2) and (
                e - vs == 2 or p[vs + 2] == 32):
            _put(o, b"a=silenceSupp:on - - - -\r\n", 26)
        return 0
    if kind == A_RTPMAP or kind == A_FMTP or kind == A_RTCP_FB:
        if not in_media:
            return 0
        ne = vs
        while ne < e and p[ne] != 32:
            ne += 1
        if kind == A_RTCP_FB and ne - vs == 1 and p[vs] == 42:
            pt = -1  # `*`: every format
        elif not _number(p, vs, ne, 127, &pt) or newpt[pt] < 0:
            return 0
        if kind == A_RTPMAP:
            if forms[pt] == NULL or rtpmap_done[pt]:
                return 0
            rtpmap_done[pt] = True
            _put(o, b"a=rtpmap:", 9)
            _put_pt(o, newpt[pt])
            _put(o, b" ", 1)
            _put_bytes(o, (<tuple>forms[pt])[0])
            _put(o, b"\r\n", 2)
            return 0
        if kind == A_FMTP:
            grammar = (<tuple>forms[pt])[1] if forms[pt] != NULL else STATIC_FMTP[pt]
            if grammar > 0 and ne < e:
                params = _fmtp_cached(grammar, PyBytes_FromStringAndSize(
                    <const char*>p + ne + 1, e - ne - 1))
                if params is not None:
                    _put(o, b"a=fmtp:", 7)
                    _put_pt(o, newpt[pt])
                    _put(o, b" ", 1)
                    _put_bytes(o, params)
                    _put(o, b"\r\n", 2)
            return 0
        text = _decode(p, ne + 1, e) if ne < e else ""
        fb_type, _, param = text.partition(" ")
        fb_type = fb_type.lower()
        param = param.strip().lower()
        if fb_type == "trr-int":
            v2 = _int_in(param, 0, 10000)
            if v2 is None:
                return 0
            param = "%d" % _round2(v2)
        elif param not in _RTCP_FB.get(fb_type, ()):
            return 0
        _put_bytes(o, ("a=rtcp-fb:%s %s%s\r\n" % (
            "*" if pt < 0 else "%d" % newpt[pt], fb_type, " " + param if param else "")
        ).encode())
        return 0
    text = _decode(p, vs, e)
    rebuilt = None
    if kind == A_FRAMERATE:
        if text.isascii() and text.isdigit() and 1 <= len(text) <= 3 and 1 <= int(text) <= 120:
            rebuilt = "framerate:%d" % int(text)
        elif text in _FRAMERATES:
            rebuilt = "framerate:" + text
    elif kind == A_RTCP:
        port, _, address = text.partition(" ")
        if _int_in(port, 0, 65535) is not None:
            if not address:
                rebuilt = "rtcp:%d" % int(port)
            else:
                ab = address.encode("ascii", "replace")
                if _connection_ok(<const uchar*>PyBytes_AS_STRING(ab), 0, len(ab)) and (
                        "/" not in address):
                    rebuilt = "rtcp:%d %s" % (int(port), address)
    elif kind == A_CRYPTO:
        rebuilt = _crypto(text)
        if rebuilt is not None:
            rebuilt = "crypto:" + rebuilt
    elif kind == A_FINGERPRINT:
        rebuilt = _fingerprint(text)
        if rebuilt is not None:
            rebuilt = "fingerprint:" + rebuilt
    elif kind == A_SETUP:
        if text.lower() in _SETUP:
            rebuilt = "setup:" + text.lower()
    elif kind == A_CONNECTION:
        if text.lower() in _CONNECTION:
            rebuilt = "connection:" + text.lower()
    if rebuilt is not None:
        _put_bytes(o, ("a=" + rebuilt + "\r\n").encode())
    return 0


cdef bint _media(Out* o, const uchar* p, Py_ssize_t s, Py_ssize_t e, object media_ports,
                 int index, void** forms, int* newpt, PayloadTypes pts, int side) except -1:
    """Write the m= line p[s:e] (after `m=`) rebuilt: a known media type, its port (replaced
    when asked), an allowed protocol, and only the formats with a meaning, renumbered when
    the leg is paired. Fills `newpt`. Returns True when no format is left: the stream is
    written as rejected (port 0, RFC 3264 §6) and its attributes are dropped."""
    cdef Py_ssize_t a, b, c, k, f, j
    cdef long long port, count = 0, pt
    cdef bint rtp
    cdef int kind
    cdef char lowered[24]   # media type and protocol, lower-cased for the table lookups
    cdef list formats = []
    a = _token(p, s, e)
    if a == s or a >= e or p[a] != 32:
        raise ParseError("malformed m= line")
    if a - s > 11:
        raise ParseError("unknown m= media")
    for j in range(s, a):
        lowered[j - s] = LOWER[p[j]]
    media = _SDP_MEDIA.get(PyBytes_FromStringAndSize(lowered, a - s))
    if media is None:
        raise ParseError("unknown m= media")
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
        if not _number(p, c + 1, k, 16, &count):
            raise ParseError("malformed m= port")
    if k >= e or p[k] != 32:
        raise ParseError("malformed m= line")
    f = k + 1
    k = f
    while k < e and p[k] != 32:
        k += 1
    if k - f > 20:
        raise ParseError("unsupported m= protocol")
    for j in range(f, k):
        lowered[j - f] = LOWER[p[j]]
    proto = _SDP_PROTOS.get(PyBytes_FromStringAndSize(lowered, k - f))
    if proto is None:
        raise ParseError("unsupported m= protocol")
    rtp = b"RTP" in proto
    kind = MEDIA_AUDIO if media == b"audio" else MEDIA_VIDEO if media == b"video" else 0
    while k < e:
        f = k + 1
        k = f
        while k < e and p[k] != 32:
            k += 1
        if f == k:
            continue
        if not rtp:
            fmt = PyBytes_FromStringAndSize(<const char*>p + f, k - f).lower()
            if fmt in _OTHER_FORMATS and fmt not in formats:
                formats.append(fmt)
        elif _number(p, f, k, 127, &pt) and newpt[pt] < 0 and (
                (STATIC_MEDIA[pt] & kind) or (pt >= 96 and forms[pt] != NULL)):
            newpt[pt] = pts.number(side, index, pt) if pts is not None and pt >= 96 else pt
            formats.append(_PT_TEXT[newpt[pt]])
    _put(o, b"m=", 2)
    _put_bytes(o, media)
    if not formats:
        _put_bytes(o, b" 0 %s %s\r\n" % (proto, b"0" if rtp else b"*"))
        return True
    if media_ports is not None and port != 0:  # port 0 is a rejected stream (RFC 3264 §6)
        if index >= len(media_ports):
            raise ValueError("media_ports has no port for m= line %d" % (index + 1))
        port = media_ports[index]
    _put(o, b" ", 1)
    _put_int(o, port)
    if count:
        _put(o, b"/", 1)
        _put_int(o, count)
    _put(o, b" ", 1)
    _put_bytes(o, proto)
    for fmt in formats:
        _put(o, b" ", 1)
        _put_bytes(o, fmt)
    _put(o, b"\r\n", 2)
    return False


cdef int _section_rtpmaps(const uchar* p, Line* lines, Py_ssize_t first, Py_ssize_t end,
                          void** forms) except -1:
    """Fill `forms` with the valid a=rtpmap lines of one media section, by payload type
    (the first one wins)."""
    cdef Py_ssize_t j
    cdef Line* ln
    cdef void* form
    cdef long long pt
    memset(forms, 0, 128 * sizeof(void*))
    for j in range(first, end):
        ln = &lines[j]
        if (ln.kind == 97 and ln.e - ln.s > 7
                and _lowercmp(p + ln.s, <const uchar*>b"rtpmap:", 7)):
            form = _rtpmap(p, ln.s + 7, ln.e, &pt)
            if form != NULL and forms[pt] == NULL:
                forms[pt] = form
    return 0


cdef Py_ssize_t _split_lines(const uchar* p, Py_ssize_t n, Line* lines) except -1:
    """Fill `lines` with the SDP's lines (empty ones skipped); ParseError if it is not SDP."""
    cdef Py_ssize_t i = 0, e, le, count = 0
    cdef const uchar* nl
    while i < n:
        nl = <const uchar*>memchr(p + i, 10, n - i)
        le = n if nl == NULL else nl - p
        e = le - 1 if le > i and p[le - 1] == 13 else le
        if e > i:
            if e - i < 2 or p[i + 1] != 61 or not 97 <= p[i] <= 122:
                raise ParseError("malformed SDP line")
            if count == 0 and not (p[i] == 118 and e - i == 3 and p[i + 2] == 48):
                raise ParseError("SDP does not start with v=0")
            if count > 0 and p[i] == 118:
                raise ParseError("second v= line in SDP")
            lines[count].kind = p[i]
            lines[count].s = i + 2
            lines[count].e = e
            count += 1
        i = le + 1
    if count == 0:
        raise ParseError("empty SDP")
    return count


cdef bytes _rebuild_rest(bytes body, str connection_address, object media_ports,
                         frozenset attributes, PayloadTypes pts, int side):
    """The rebuilt SDP after its o= line: s=-, then c= b= t= m= and the allowed a= lines,
    each rebuilt from its grammar (see above). v o s are rebuilt, t= is always `0 0` (RFC 3264
    §5), and i u e p k z r, unknown lines and attributes without a known grammar are
    dropped."""
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t count, j, m_end
    cdef Line* lines = <Line*>malloc(sizeof(Line) * (n // 3 + 2))
    cdef Line* ln
    cdef int media_index = -1
    cdef int newpt[128]
    cdef bint rtpmap_done[128]
    cdef bint t_written = False, rejected = False
    cdef void* forms[128]
    cdef bytes conn = None, line
    cdef Out o
    if lines == NULL:
        raise MemoryError()
    if connection_address is not None:
        conn = b"c=" + _addr_type(connection_address) + b" " + connection_address.encode(
            "ascii") + b"\r\n"
    o.buf = NULL
    o.n = o.cap = 0
    memset(newpt, 0xff, sizeof(newpt))
    try:
        count = _split_lines(p, n, lines)
        _put(&o, b"s=-\r\n", 5)
        for j in range(1, count):
            ln = &lines[j]
            if (ln.kind == 109 or (ln.kind == 97 and media_index < 0)) and not t_written:
                _put(&o, b"t=0 0\r\n", 7)
                t_written = True
            if ln.kind == 109:  # m
                media_index += 1
                if pts is not None and media_index >= MAX_PAIRED_MEDIA:
                    raise ParseError("too many m= lines")
                m_end = j + 1
                while m_end < count and lines[m_end].kind != 109:
                    m_end += 1
                _section_rtpmaps(p, lines, j + 1, m_end, forms)
                memset(newpt, 0xff, sizeof(newpt))
                memset(rtpmap_done, 0, sizeof(rtpmap_done))
                rejected = _media(&o, p, ln.s, ln.e, media_ports, media_index, forms,
                                  newpt, pts, side)
            elif ln.kind == 99:  # c
                if not _connection_ok(p, ln.s, ln.e):
                    raise ParseError("c= address is not an IP literal")
                if conn is not None:
                    _put_bytes(&o, conn)
                else:
                    _put_line(&o, p, ln.s - 2, ln.e)
            elif rejected:
                continue
            elif ln.kind == 98:  # b
                _bandwidth(&o, p, ln.s, ln.e)
            elif ln.kind == 97:  # a
                _write_attribute(&o, p, ln.s, ln.e, attributes, media_index >= 0, forms, newpt,
                           rtpmap_done)
        if not t_written:
            _put(&o, b"t=0 0\r\n", 7)
        return PyBytes_FromStringAndSize(o.buf, o.n)
    finally:
        free(o.buf)
        free(lines)


cdef inline bytes _addr_type(str address):
    return b"IN IP6" if ":" in address else b"IN IP4"


cdef bytes _origin_line(str address, long long session_id, long long version):
    return b"v=0\r\no=- %d %d %s %s\r\n" % (session_id, version, _addr_type(address),
                                              address.encode("ascii"))


def rebuild_sdp(bytes body not None, *, str origin_address not None, long long session_id,
                long long version, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
    """Rebuild an SDP body from its grammar (see `_core.pyi`). Raises ParseError."""
    return _origin_line(origin_address, session_id, version) + _rebuild_rest(
        body, connection_address, media_ports, attributes, None, 0)


cdef class SdpOrigin:
    """The SDP state of one leg: o= (RFC 3264 §8: fixed session id, version bumped on
    change) and, once paired with the other leg, the renumbering of dynamic payload types."""

    cdef public long long session_id
    cdef public long long version
    cdef str _address
    cdef bytes _last
    cdef bytes _origin       # the v= and o= lines for the current version
    cdef PayloadTypes _pts
    cdef int _side

    def __init__(self, str address not None, session_id=None):
        self._address = address
        self.session_id = (int.from_bytes(os.urandom(4), "big") & 0x7fffffff
                           if session_id is None else session_id)
        self.version = 0
        self._last = None
        self._origin = None
        self._pts = None
        self._side = 0

    def pair(self, SdpOrigin other not None):
        """Share a fresh payload type map with the other leg's origin: from now on each
        renumbers the dynamic payload types of what it rebuilds from 96 upward, and an answer
        gets the numbers of the offer its leg received."""
        self._pts = other._pts = PayloadTypes()
        self._side, other._side = 0, 1

    def rebuild(self, bytes body not None, *, str connection_address=None, media_ports=None,
                frozenset attributes=DEFAULT_SDP_ATTRIBUTES):
        cdef bytes rest = _rebuild_rest(body, connection_address, media_ports, attributes,
                                        self._pts, self._side)
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
