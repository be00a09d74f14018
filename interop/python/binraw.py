"""The binary-raw subprotocol (version 1) for subgate, written from
protocols/binary-raw.md alone: primitives (§2), envelopes (§3, §4), the
method table (§5) and the payload layouts (§7, §8, §9).

Values are the same Python shapes the json-rpc encoding carries (dicts with
the json-rpc field names), so one chat scenario can run over every encoding:

    frame = encode_request(1, "chat.ping", encode_params("chat.ping", {}))
    msg = decode(frame_from_server)          # Msg(kind="result", id=1, payload=...)
    decode_result("chat.ping", msg.payload)  # {"status": "ok", "timestamp": ...}

Decoding is strict: anything §2-§9 call invalid raises DecodeError, whose
code is the error a server answers it with (§6).
"""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

MAX_U64 = 2**64 - 1
MAX_ID = 2**63 - 1  # §4: ids are 0 .. 2^63-1
MAX_BATCH = 100  # §10

KINDS = ("request", "notification", "result", "error", "batch")  # §3, kinds 0..4
TAG_M = 0x08  # method by name (request, notification)
TAG_N = 0x10  # null id (error)
TAG_RESERVED = 0xE0


class DecodeError(ValueError):
    def __init__(self, code, detail):
        super().__init__("%d: %s" % (code, detail))
        self.code = code
        self.detail = detail


# ------------------------------------------------------------ primitives (§2)


class Reader:
    """Reads §2 types from one frame or batch element, left to right."""

    def __init__(self, buf, code=PARSE_ERROR):
        self.b = bytes(buf)
        self.p = 0
        self.code = code  # the error an invalid read is

    def left(self):
        return len(self.b) - self.p

    def fail(self, what):
        raise DecodeError(self.code, "%s at byte %d" % (what, self.p))

    def byte(self):
        if self.p >= len(self.b):
            self.fail("truncated")
        c = self.b[self.p]
        self.p += 1
        return c

    def uvarint(self):
        x = 0
        for i in range(10):
            if self.p + i >= len(self.b):
                self.fail("truncated varint")
            c = self.b[self.p + i]
            if c < 0x80:
                if i > 0 and c == 0:
                    self.fail("non-minimal varint")
                if i == 9 and c > 1:
                    self.fail("varint overflows 64 bits")
                self.p += i + 1
                return x | c << (7 * i)
            x |= (c & 0x7F) << (7 * i)
        self.fail("varint longer than 10 bytes")

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def bool(self):
        c = self.byte()
        if c > 1:
            self.fail("bool byte %02x" % c)
        return c == 1

    def take(self, n):
        if n > self.left():
            self.fail("length %d past the end (%d left)" % (n, self.left()))
        v = self.b[self.p : self.p + n]
        self.p += n
        return v

    def _utf8(self, raw):
        try:
            return raw.decode("utf-8")  # strict: overlong, surrogates, > U+10FFFF, truncated
        except UnicodeDecodeError as err:
            self.fail("invalid UTF-8 (%s)" % err.reason)

    def string(self):
        return self._utf8(self.take(self.uvarint()))

    def rest(self):
        """string*: every byte up to the end."""
        return self._utf8(self.take(self.left()))

    def rest_bytes(self):
        return self.take(self.left())

    def list(self, item):
        n = self.uvarint()
        if n * item.min > self.left():
            self.fail("list of %d cannot fit in %d bytes" % (n, self.left()))
        return [item.dec(self) for _ in range(n)]

    def end(self):
        if self.left():
            self.fail("%d trailing byte(s)" % self.left())


class Writer:
    def __init__(self):
        self.b = bytearray()

    def bytes(self):
        return bytes(self.b)

    def byte(self, c):
        self.b.append(c)

    def uvarint(self, x):
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= MAX_U64:
            raise TypeError("uvarint: %r is not an integer in 0 .. 2^64-1" % (x,))
        while x >= 0x80:
            self.b.append((x & 0x7F) | 0x80)
            x >>= 7
        self.b.append(x)

    def varint(self, n):
        if isinstance(n, bool) or not isinstance(n, int) or not -(2**63) <= n < 2**63:
            raise TypeError("varint: %r is not a signed 64-bit integer" % (n,))
        self.uvarint((n << 1) ^ (n >> 63))

    def bool(self, v):
        if not isinstance(v, bool):
            raise TypeError("bool: %r" % (v,))
        self.b.append(1 if v else 0)

    def string(self, s):
        raw = _utf8(s)
        self.uvarint(len(raw))
        self.b += raw

    def rest(self, s):
        self.b += _utf8(s)


def _utf8(s):
    if not isinstance(s, str):
        raise TypeError("string: %r" % (s,))
    return s.encode("utf-8")  # strict: a lone surrogate raises


def uvarint_bytes(x):
    w = Writer()
    w.uvarint(x)
    return w.bytes()


def varint_bytes(n):
    w = Writer()
    w.varint(n)
    return w.bytes()


def string_bytes(s):
    w = Writer()
    w.string(s)
    return w.bytes()


# --------------------------------------------------- payload layouts (§7-§9)


class _Prim:
    min = 1  # every §2 primitive takes at least one byte

    def __init__(self, name, zero):
        self.name = name
        self.zero = zero  # how an absent value is written

    def enc(self, w, v):
        getattr(w, self.name)(v)

    def dec(self, r):
        return getattr(r, self.name)()


STRING, UVARINT, VARINT, BOOL = _Prim("string", ""), _Prim("uvarint", 0), _Prim("varint", 0), _Prim("bool", False)


class ListOf:
    min = 1  # the count

    def __init__(self, item):
        self.item = item

    def enc(self, w, v):
        if not isinstance(v, list):
            raise TypeError("list: %r" % (v,))
        w.uvarint(len(v))
        for x in v:
            self.item.enc(w, x)

    def dec(self, r):
        return r.list(self.item)


class Record:
    """Fields in order, no tags (§7). A field named in zero_absent is the
    json-rpc field that is absent when 0 or empty (HistoryParams' since,
    limit and epoch: "0, or the empty string, is how absent is written")."""

    def __init__(self, *fields, zero_absent=()):
        self.fields = fields  # (name, type)
        self.zero_absent = set(zero_absent)
        self.min = sum(t.min for _, t in fields)

    def enc(self, w, v):
        if v is None:
            v = {}
        if not isinstance(v, dict):
            raise TypeError("record: %r" % (v,))
        names = [n for n, _ in self.fields]
        extra = set(v) - set(names)
        if extra:
            raise KeyError("fields %s not in the layout %s" % (sorted(extra), names))
        for name, t in self.fields:
            if name in v:
                t.enc(w, v[name])
            elif name in self.zero_absent:
                t.enc(w, t.zero)
            else:
                raise KeyError("field %r missing" % name)

    def dec(self, r):
        d = {}
        for name, t in self.fields:
            x = t.dec(r)
            if not (name in self.zero_absent and x == t.zero):
                d[name] = x
        return d


class _Message:
    """chat.message (§9): flags, from, message, ts, then room, to, offset,
    epoch as the flags say. Offset and epoch come together (room messages)
    or not at all."""

    min = 4
    OPTIONAL = (("room", 0x01, STRING), ("to", 0x02, STRING), ("offset", 0x04, UVARINT), ("epoch", 0x08, STRING))
    OFFSET_EPOCH = 0x04 | 0x08

    def enc(self, w, v):
        extra = set(v) - {"from", "message", "ts", "room", "to", "offset", "epoch"}
        if extra:
            raise KeyError("chat.message fields %s" % sorted(extra))
        flags = 0
        for name, bit, _ in self.OPTIONAL:
            if v.get(name):  # an empty room, to or epoch, or offset 0, is absent
                flags |= bit
        if flags & self.OFFSET_EPOCH not in (0, self.OFFSET_EPOCH):
            raise ValueError("chat.message: offset and epoch go together")
        w.byte(flags)
        w.string(v["from"])
        w.string(v["message"])
        w.varint(v["ts"])
        for name, bit, t in self.OPTIONAL:
            if flags & bit:
                t.enc(w, v[name])

    def dec(self, r):
        flags = r.byte()
        if flags & ~0x0F:
            r.fail("chat.message flags %02x: bits 4-7 set" % flags)
        if flags & self.OFFSET_EPOCH not in (0, self.OFFSET_EPOCH):
            r.fail("chat.message flags %02x: the offset and epoch flags differ" % flags)
        d = {"from": r.string(), "message": r.string(), "ts": r.varint()}
        for name, bit, t in self.OPTIONAL:
            if flags & bit:
                x = t.dec(r)
                if not x:
                    r.fail("chat.message flag %02x set for an empty %s" % (bit, name))
                d[name] = x
        return d


class _Presence:
    """chat.presence (§9): room, client_id, event byte 01 join / 02 leave."""

    min = 3
    EVENTS = {1: "join", 2: "leave"}

    def enc(self, w, v):
        if set(v) != {"room", "client_id", "event"}:
            raise KeyError("chat.presence fields %s" % sorted(v))
        w.string(v["room"])
        w.string(v["client_id"])
        codes = {e: c for c, e in self.EVENTS.items()}
        if v["event"] not in codes:
            raise ValueError("chat.presence event %r" % (v["event"],))
        w.byte(codes[v["event"]])

    def dec(self, r):
        d = {"room": r.string(), "client_id": r.string()}
        c = r.byte()
        if c not in self.EVENTS:
            r.fail("chat.presence event byte %02x" % c)
        d["event"] = self.EVENTS[c]
        return d


EMPTY = Record()
ROOM = Record(("room", STRING))
MEMBERS = ("members", ListOf(STRING))
METHOD_INFO = Record(("name", STRING), ("id", UVARINT), ("push", BOOL), ("params", STRING), ("result", STRING))
HISTORY_ENTRY = Record(("offset", UVARINT), ("from", STRING), ("message", STRING), ("ts", VARINT))

# §5: id, name, push, params (or push payload) layout, result layout.
TABLE = (
    (0x01, "rpc.discover", False, EMPTY, Record(("methods", ListOf(METHOD_INFO)))),
    (0x10, "chat.ping", False, EMPTY, Record(("status", STRING), ("timestamp", VARINT))),
    (0x11, "chat.broadcast", False, Record(("message", STRING)), Record(("status", STRING), ("delivered", UVARINT))),
    (0x12, "chat.join", False, ROOM, Record(("room", STRING), MEMBERS, ("offset", UVARINT), ("epoch", STRING))),
    (0x13, "chat.leave", False, ROOM, ROOM),
    (0x14, "chat.send", False, Record(("room", STRING), ("message", STRING)), Record(("room", STRING), ("offset", UVARINT), ("epoch", STRING))),
    (0x15, "chat.direct", False, Record(("to", STRING), ("message", STRING)), Record(("delivered", UVARINT))),
    (0x16, "chat.members", False, ROOM, Record(("room", STRING), MEMBERS)),
    (
        0x17,
        "chat.history",
        False,
        Record(("room", STRING), ("since", UVARINT), ("limit", UVARINT), ("epoch", STRING), zero_absent=("since", "limit", "epoch")),
        Record(("room", STRING), ("messages", ListOf(HISTORY_ENTRY)), ("epoch", STRING), ("recovered", BOOL)),
    ),
    (0x20, "chat.message", True, _Message(), None),
    (0x21, "chat.presence", True, _Presence(), None),
    (0x22, "gateway.notice", True, Record(("kind", STRING), ("message", STRING)), None),
)

BY_ID = {row[0]: row for row in TABLE}
BY_NAME = {row[1]: row for row in TABLE}


def method_name(method):
    """The table name of a method id or name; '#N' for an unknown id."""
    if isinstance(method, int):
        return BY_ID[method][1] if method in BY_ID else "#%d" % method
    return method


def _row(method):
    row = BY_ID.get(method) if isinstance(method, int) else BY_NAME.get(method)
    if row is None:
        raise KeyError("method %r is not in the §5 table" % (method,))
    return row


def _encode(layout, value):
    w = Writer()
    layout.enc(w, value)
    return w.bytes()


def _decode(layout, payload, code):
    r = Reader(payload, code)
    v = layout.dec(r)
    r.end()  # §7: consumed exactly
    return v


def encode_params(method, params):
    """The params (or push) payload of a method in the table."""
    return _encode(_row(method)[3], params)


def decode_params(method, payload):
    return _decode(_row(method)[3], payload, INVALID_PARAMS)


def encode_result(method, result):
    return _encode(_row(method)[4], result)


def decode_result(method, payload):
    """A result payload; a bad one is a protocol error of the server (§7)."""
    return _decode(_row(method)[4], payload, PARSE_ERROR)


def decode_push(method, payload):
    """(name, params) of a server push, or None for a push id not in the
    table (§4: a client ignores it)."""
    row = BY_ID.get(method) if isinstance(method, int) else BY_NAME.get(method)
    if row is None or not row[2]:
        return None
    return row[1], _decode(row[3], payload, PARSE_ERROR)


# ------------------------------------------------------------ envelopes (§3, §4)


class Msg:
    """One decoded message: kind is one of KINDS. id is None for a
    notification or a null-id error; method is an int id or a str name;
    payload is bytes (request, notification, result); code, message and data
    (None when empty) for an error; elements for a batch."""

    def __init__(self, kind, id=None, method=None, payload=b"", code=None, message=None, data=None, elements=None, by_name=False):
        self.kind = kind
        self.id = id
        self.method = method
        self.by_name = by_name
        self.payload = payload
        self.code = code
        self.message = message
        self.data = data
        self.elements = elements

    def __repr__(self):
        fields = ("%s=%r" % kv for kv in vars(self).items() if not (kv[1] is None or kv[1] is False or kv[1] == b""))
        return "Msg(%s)" % ", ".join(fields)


def _id(w, mid):
    if isinstance(mid, bool) or not isinstance(mid, int) or not 0 <= mid <= MAX_ID:
        raise ValueError("id %r is not in 0 .. 2^63-1" % (mid,))
    w.uvarint(mid)


def _method(method, by_name):
    """(tag bit, bytes) of a method: by id when it is an id or a table name
    (§4: senders SHOULD use ids), by name when asked or not in the table."""
    if isinstance(method, str) and (by_name or method not in BY_NAME):
        if not method:
            raise ValueError("empty method name")
        return TAG_M, string_bytes(method)
    if isinstance(method, str):
        method = BY_NAME[method][0]
    return 0, uvarint_bytes(method)


def encode_request(mid, method, payload=b"", by_name=False):
    flag, m = _method(method, by_name)
    w = Writer()
    w.byte(0 | flag)
    _id(w, mid)
    return w.bytes() + m + payload


def encode_notification(method, payload=b"", by_name=False):
    flag, m = _method(method, by_name)
    return bytes([1 | flag]) + m + payload


def encode_result_frame(mid, payload):
    w = Writer()
    w.byte(2)
    _id(w, mid)
    w.b += payload
    return w.bytes()


def encode_error(mid, code, message, data=None):
    """An error; mid None is the null-id form (tag 13)."""
    w = Writer()
    if mid is None:
        w.byte(3 | TAG_N)
    else:
        w.byte(3)
        _id(w, mid)
    w.varint(code)
    w.string(message)
    w.rest(data or "")
    return w.bytes()


def encode_batch(elements):
    """A batch of already encoded messages. Sizes outside 1..100 are not
    refused here, so that tests can send them."""
    w = Writer()
    w.byte(4)
    w.uvarint(len(elements))
    for e in elements:
        w.uvarint(len(e))
        w.b += e
    return w.bytes()


def encode(msg):
    """Encodes a Msg (the inverse of decode)."""
    if msg.kind == "request":
        return encode_request(msg.id, msg.method, msg.payload, msg.by_name)
    if msg.kind == "notification":
        return encode_notification(msg.method, msg.payload, msg.by_name)
    if msg.kind == "result":
        return encode_result_frame(msg.id, msg.payload)
    if msg.kind == "error":
        return encode_error(msg.id, msg.code, msg.message, msg.data)
    if msg.kind == "batch":
        return encode_batch([encode(e) for e in msg.elements])
    raise ValueError("kind %r" % (msg.kind,))


def check_tag(tag):
    """The kind of a tag byte (§3); DecodeError (-32700) for an invalid tag."""
    kind = tag & 0x07
    if tag & TAG_RESERVED:
        raise DecodeError(PARSE_ERROR, "reserved tag bits set in %02x" % tag)
    if kind >= len(KINDS):
        raise DecodeError(PARSE_ERROR, "reserved kind %d" % kind)
    if tag & TAG_M and kind not in (0, 1):
        raise DecodeError(PARSE_ERROR, "method-by-name bit on kind %d" % kind)
    if tag & TAG_N and kind != 3:
        raise DecodeError(PARSE_ERROR, "null-id bit on kind %d" % kind)
    return kind


def decode(frame, element=False):
    """Decodes one frame (or, with element=True, one batch element).

    Raises DecodeError with code -32700 for what §3, §4 and §6 call a parse
    error and -32600 for an invalid request (empty method name, batch size,
    nested batch). A batch's elements are decoded too: the first bad one
    raises (a client has no use for the rest).
    """
    r = Reader(frame, PARSE_ERROR)
    if not r.left():
        r.fail("empty frame")
    tag = r.byte()
    kind = check_tag(tag)

    def read_id():
        v = r.uvarint()
        if v > MAX_ID:
            r.fail("id %d >= 2^63" % v)
        return v

    def read_method():
        if not tag & TAG_M:
            return r.uvarint()
        name = r.string()
        if not name:
            raise DecodeError(INVALID_REQUEST, "empty method name")
        return name

    if kind == 0:
        mid = read_id()
        return Msg("request", id=mid, method=read_method(), payload=r.rest_bytes(), by_name=bool(tag & TAG_M))
    if kind == 1:
        return Msg("notification", method=read_method(), payload=r.rest_bytes(), by_name=bool(tag & TAG_M))
    if kind == 2:
        mid = read_id()
        return Msg("result", id=mid, payload=r.rest_bytes())
    if kind == 3:
        mid = None if tag & TAG_N else read_id()
        code = r.varint()
        message = r.string()
        data = r.rest()
        return Msg("error", id=mid, code=code, message=message, data=data or None)
    # kind 4, batch (§4): the count first (0 or over 100 is an invalid
    # request whatever follows), then the frame's structure (a bad length or
    # trailing bytes make the whole frame a parse error), then the elements.
    if element:
        raise DecodeError(INVALID_REQUEST, "batch inside a batch")
    n = r.uvarint()
    if not 1 <= n <= MAX_BATCH:
        raise DecodeError(INVALID_REQUEST, "batch of %d messages" % n)
    raws = [r.take(r.uvarint()) for _ in range(n)]
    r.end()
    return Msg("batch", elements=[decode(e, element=True) for e in raws])
