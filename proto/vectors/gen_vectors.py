#!/usr/bin/env python3
"""Test vectors for the Tally wire protocol, versions 1 and 2 (proto/PROTOCOL.md).

An encoder and a decoder written from PROTOCOL.md alone, in Python 3 with the standard library
only: they show the spec is implementable outside Swift, and they produce and check the vectors.

    python3 proto/vectors/gen_vectors.py           # (re)writes valid.json and invalid.json
    python3 proto/vectors/gen_vectors.py --check   # verifies the files without writing them

--check verifies that both files are exactly what this script generates, that every valid
vector decodes to its "frame" (and, unless "encode" is false, that encoding "frame" gives
exactly "hex"), and that every invalid vector is rejected with its "error" label
("need_more_data" meaning the decoder asks for more bytes instead).
"""

import argparse
import json
import os
import struct
import sys
import unicodedata

# --- Constants (PROTOCOL.md "Frame header", "Limits") -------------------------------------

MAGIC = b"TY"
VERSION = 1
VERSION2 = 2
HEADER_SIZE = 8
MAX_PAYLOAD = 1 << 20
MAX_DATAGRAM = 65_507

TYPE_EVENTS = 0x01
TYPE_AUTH = 0x02  # version 2 only
TYPE_ACK = 0x81
TYPE_ERROR = 0x82
TYPE_AUTH_OK = 0x83  # version 2 only

FRAME_ACK_REQUESTED = 0x01
FRAME_FLAGS_KNOWN = 0x01

EV_PATH = 0x01
EV_USER = 0x02
EV_TIMESTAMP = 0x04
EV_SAME_TYPE = 0x08
EV_FLAGS_KNOWN = 0x0F
EV_ATTRIBUTION = 0x10  # version 2: referrer, utm_source, utm_medium, utm_campaign
EV_CLIENT = 0x20  # version 2: client_address, user_agent
EV_VISIT = 0x40  # version 2, the server's spool only: never valid from a sender
EV_FLAGS_KNOWN_V2 = 0x3F
ATTRIBUTION = ("referrer", "utm_source", "utm_medium", "utm_campaign")
CLIENT = ("client_address", "user_agent")

MAX_SITE_ID = 128
MAX_EVENT_TYPE = 64
MAX_PATH = 2048
MAX_USER_ID = 256
MAX_REFERRER = 2048
MAX_UTM = 256
MAX_CLIENT_ADDRESS = 64
MAX_USER_AGENT = 1024
MIN_TIMESTAMP = 0
MAX_TIMESTAMP = 4_102_444_800_000_000  # exclusive: 2100-01-01T00:00:00Z

MAX_ERROR_MESSAGE = 1024

ERROR_LABELS = {
    1: "bad_magic",
    2: "unsupported_version",
    3: "unknown_frame_type",
    4: "frame_too_large",
    5: "truncated",
    6: "trailing_bytes",
    7: "invalid_utf8",
    8: "invalid_flags",
    9: "empty_frame",
    10: "invalid_event",
    11: "missing_event_type",
    12: "overloaded",
    13: "unauthorized",
}
ERROR_CODES = {label: code for code, label in ERROR_LABELS.items()}

# --- Encoder ---------------------------------------------------------------------------------


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    """u16 byte length, then the UTF-8 bytes (str), or the given raw bytes (bytes)."""
    b = s.encode("utf-8") if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return u16(len(b)) + b


def frame_bytes(frame_type, payload, version=VERSION, magic=MAGIC, length=None):
    """A header followed by `payload`; the keyword arguments exist to build broken frames."""
    return magic + u8(version) + u8(frame_type) + u32(len(payload) if length is None else length) + payload


def encode_events(frame):
    """EVENTS frame from {"sequence", "ack_requested", "site_id", "events": [...]}.

    The same-type flag is set whenever an event's event_type is byte-identical to the previous
    event's; optional fields are written exactly when they are not None (an empty string is
    written as a zero-length string, which decodes as absent)."""
    out = [u8(FRAME_ACK_REQUESTED if frame["ack_requested"] else 0), u64(frame["sequence"]),
           string(frame["site_id"]), u16(len(frame["events"]))]
    # Version 2 only when some event needs it, so version-1 servers read everything else.
    version = VERSION2 if any(e.get(k) is not None for e in frame["events"] for k in ATTRIBUTION + CLIENT) else VERSION
    if not 1 <= len(frame["events"]) <= 0xFFFF:
        raise ValueError("an EVENTS frame holds 1..65535 events")
    previous = None
    for e in frame["events"]:
        flags = 0
        if e.get("path") is not None:
            flags |= EV_PATH
        if e.get("user_id") is not None:
            flags |= EV_USER
        if e.get("timestamp") is not None:
            flags |= EV_TIMESTAMP
        attribution = any(e.get(k) is not None for k in ATTRIBUTION)
        client = any(e.get(k) is not None for k in CLIENT)
        if attribution:
            flags |= EV_ATTRIBUTION
        if client:
            flags |= EV_CLIENT
        same = previous is not None and previous.encode("utf-8") == e["event_type"].encode("utf-8")
        if same:
            flags |= EV_SAME_TYPE
        out.append(u8(flags))
        if not same:
            out.append(string(e["event_type"]))
        if e.get("path") is not None:
            out.append(string(e["path"]))
        if e.get("user_id") is not None:
            out.append(string(e["user_id"]))
        if e.get("timestamp") is not None:
            out.append(i64(e["timestamp"]))
        if attribution:
            out += [string(e.get(k) or "") for k in ATTRIBUTION]
        if client:
            out += [string(e.get(k) or "") for k in CLIENT]
        previous = e["event_type"]
    payload = b"".join(out)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload exceeds 1 MiB")
    return frame_bytes(TYPE_EVENTS, payload, version=version)


def encode_ack(sequence):
    return frame_bytes(TYPE_ACK, u64(sequence))


def encode_error(code, message):
    """ERROR frame. Like the server, caps the message at 1024 UTF-8 bytes, falling back to the
    code's label when the cut would split a character."""
    m = message.encode("utf-8")
    if len(m) > MAX_ERROR_MESSAGE:
        try:
            m = m[:MAX_ERROR_MESSAGE].decode("utf-8").encode("utf-8")
        except UnicodeDecodeError:
            m = ERROR_LABELS[code].encode("utf-8")
    return frame_bytes(TYPE_ERROR, u16(code) + string(m))


def encode_auth(key):
    """AUTH frame: the key as one string. AUTH exists only in version 2."""
    return frame_bytes(TYPE_AUTH, string(key), version=VERSION2)


def encode_auth_ok(site_id, key_id):
    """AUTH_OK frame: site_id, then key_id. AUTH_OK exists only in version 2."""
    return frame_bytes(TYPE_AUTH_OK, string(site_id) + string(key_id), version=VERSION2)


def encode(frame):
    if frame["type"] == "events":
        return encode_events(frame)
    if frame["type"] == "ack":
        return encode_ack(frame["sequence"])
    if frame["type"] == "error":
        return encode_error(frame["code"], frame["message"])
    if frame["type"] == "auth":
        return encode_auth(frame["key"])
    if frame["type"] == "auth_ok":
        return encode_auth_ok(frame["site_id"], frame["key_id"])
    raise ValueError(frame["type"])


# --- Decoder ---------------------------------------------------------------------------------


class Rejection(Exception):
    def __init__(self, label, detail=""):
        super().__init__(f"{label}: {detail}" if detail else label)
        self.label = label


NEED_MORE_DATA = "need_more_data"


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        """n bytes, or None (consuming nothing) when fewer remain."""
        if self.remaining() < n:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self, fmt):
        b = self.take(struct.calcsize(fmt))
        return None if b is None else struct.unpack(fmt, b)[0]

    def string(self):
        """A u16-length-prefixed UTF-8 string; None when the payload ends first."""
        if self.remaining() < 2:
            return None
        (n,) = struct.unpack(">H", self.data[self.pos:self.pos + 2])
        if self.remaining() < 2 + n:
            return None
        raw = self.data[self.pos + 2:self.pos + 2 + n]
        try:
            s = raw.decode("utf-8")  # strict: no overlongs, surrogates or code points > U+10FFFF
        except UnicodeDecodeError as e:
            raise Rejection("invalid_utf8", str(e))
        self.pos += 2 + n
        return s


def decode(data):
    """Decodes one frame from the front of `data`.

    Returns NEED_MORE_DATA, or (frame, bytes consumed). Raises Rejection. The checks run in
    the order of PROTOCOL.md "Decoding order", which decides the reason when several apply."""
    if len(data) < HEADER_SIZE:
        if len(data) >= 1 and data[0] != MAGIC[0]:
            raise Rejection("bad_magic")
        return NEED_MORE_DATA
    if data[0:2] != MAGIC:
        raise Rejection("bad_magic")
    if data[2] not in (VERSION, VERSION2):
        raise Rejection("unsupported_version", f"version {data[2]}")
    version = data[2]
    frame_type = data[3]
    (length,) = struct.unpack(">I", data[4:8])
    if length > MAX_PAYLOAD:
        raise Rejection("frame_too_large", f"length {length}")
    if len(data) < HEADER_SIZE + length:
        return NEED_MORE_DATA
    p = Reader(data[HEADER_SIZE:HEADER_SIZE + length])
    if frame_type == TYPE_EVENTS:
        frame = decode_events(p, version)
    elif frame_type == TYPE_ACK:
        seq = p.int(">Q")
        if seq is None:
            raise Rejection("truncated")
        frame = {"type": "ack", "sequence": seq}
    elif frame_type == TYPE_ERROR:
        code = p.int(">H")
        if code is None:
            raise Rejection("truncated")
        message = p.string()
        # Leniencies of the Swift decoder, mirrored: a missing message reads as "", and an
        # unknown code reads as invalid_event (10).
        frame = {"type": "error", "code": code if code in ERROR_LABELS else ERROR_CODES["invalid_event"],
                 "message": "" if message is None else message}
    elif frame_type == TYPE_AUTH and version == VERSION2:
        key = p.string()
        if key is None:
            raise Rejection("truncated")
        # Any UTF-8 string is a well-formed key field; whether the server knows it is not decoding.
        frame = {"type": "auth", "key": key}
    elif frame_type == TYPE_AUTH_OK and version == VERSION2:
        site = p.string()
        if site is None:
            raise Rejection("truncated")
        key_id = p.string()
        if key_id is None:
            raise Rejection("truncated")
        frame = {"type": "auth_ok", "site_id": site, "key_id": key_id}
    else:
        # Includes AUTH and AUTH_OK in version-1 frames: version 1 does not define them.
        raise Rejection("unknown_frame_type", f"0x{frame_type:02x}")
    if p.remaining() != 0:
        raise Rejection("trailing_bytes", f"{p.remaining()} bytes")
    return frame, HEADER_SIZE + length


def event_problems(site, event_type, path, user, timestamp, extra=None):
    problems = []
    extra = extra or {}
    for name, value, cap, required in (("site_id", site, MAX_SITE_ID, True),
                                       ("event_type", event_type, MAX_EVENT_TYPE, True),
                                       ("path", path, MAX_PATH, False),
                                       ("user_id", user, MAX_USER_ID, False),
                                       ("referrer", extra.get("referrer"), MAX_REFERRER, False),
                                       ("utm_source", extra.get("utm_source"), MAX_UTM, False),
                                       ("utm_medium", extra.get("utm_medium"), MAX_UTM, False),
                                       ("utm_campaign", extra.get("utm_campaign"), MAX_UTM, False),
                                       ("client address", extra.get("client_address"), MAX_CLIENT_ADDRESS, False),
                                       ("user agent", extra.get("user_agent"), MAX_USER_AGENT, False)):
        if value is None:
            continue
        if required and value == "":
            problems.append(f"{name} must be a non-empty string")
        elif len(value.encode("utf-8")) > cap:
            problems.append(f"{name} must be at most {cap} bytes")
    if timestamp is not None and not MIN_TIMESTAMP <= timestamp < MAX_TIMESTAMP:
        problems.append("timestamp out of range")
    return problems


def decode_events(p, version=VERSION):
    flags = p.int(">B")
    seq = p.int(">Q")
    if flags is None or seq is None:
        raise Rejection("truncated")
    if flags & ~FRAME_FLAGS_KNOWN:
        raise Rejection("invalid_flags", f"frame flags 0x{flags:02x}")
    site = p.string()
    if site is None:
        raise Rejection("truncated")
    count = p.int(">H")
    if count is None:
        raise Rejection("truncated")
    if count == 0:
        raise Rejection("empty_frame")
    if count > p.remaining():  # every event takes at least one byte
        raise Rejection("truncated")
    events = []
    previous = None
    for index in range(count):
        ef = p.int(">B")
        if ef is None:
            raise Rejection("truncated")
        if ef & ~(EV_FLAGS_KNOWN if version == VERSION else EV_FLAGS_KNOWN_V2):
            raise Rejection("invalid_flags", f"event {index} flags 0x{ef:02x}")
        if ef & EV_SAME_TYPE:
            if previous is None:
                raise Rejection("missing_event_type")
            event_type = previous
        else:
            event_type = p.string()
            if event_type is None:
                raise Rejection("truncated")
        previous = event_type
        path = user = ts = None
        if ef & EV_PATH:
            path = p.string()
            if path is None:
                raise Rejection("truncated")
        if ef & EV_USER:
            user = p.string()
            if user is None:
                raise Rejection("truncated")
        if ef & EV_TIMESTAMP:
            ts = p.int(">q")
            if ts is None:
                raise Rejection("truncated")
        extra = {}
        for flag, names in ((EV_ATTRIBUTION, ATTRIBUTION), (EV_CLIENT, CLIENT)):
            if ef & flag:
                for name in names:
                    value = p.string()
                    if value is None:
                        raise Rejection("truncated")
                    extra[name] = value or None
        problems = event_problems(site, event_type, path, user, ts, extra)
        if problems:
            raise Rejection("invalid_event", f"event {index}: " + "; ".join(problems))
        event = {"event_type": event_type, "path": path or None, "user_id": user or None, "timestamp": ts}
        if version == VERSION2:
            event.update({k: extra.get(k) for k in ATTRIBUTION + CLIENT})
        events.append(event)
    return {"type": "events", "sequence": seq, "ack_requested": bool(flags & FRAME_ACK_REQUESTED),
            "site_id": site, "events": events}


# --- Vector definitions ----------------------------------------------------------------------


def ev(event_type, path=None, user_id=None, timestamp=None):
    return {"event_type": event_type, "path": path, "user_id": user_id, "timestamp": timestamp}


def events_frame(site_id, events, sequence=0, ack_requested=False):
    return {"type": "events", "sequence": sequence, "ack_requested": ack_requested,
            "site_id": site_id, "events": events}


# Raw builders for frames an encoder would never produce: every string argument may be raw
# bytes, and flags and counts are written as given.

def raw_event(flags, event_type=None, path=None, user_id=None, timestamp=None, ts_bytes=None):
    out = u8(flags)
    if event_type is not None:
        out += string(event_type)
    if path is not None:
        out += string(path)
    if user_id is not None:
        out += string(user_id)
    if timestamp is not None:
        out += i64(timestamp)
    if ts_bytes is not None:
        out += ts_bytes
    return out


def raw_events_payload(site, events, flags=0, sequence=0, count=None):
    body = b"".join(events)
    return (u8(flags) + u64(sequence) + string(site) + u16(len(events) if count is None else count) + body)


def raw_events(site, events, **kw):
    return frame_bytes(TYPE_EVENTS, raw_events_payload(site, events, **kw))


PV = "page_view"
TS = 1_700_000_000_123_456  # 2023-11-14T22:13:20.123456Z
WRITE_KEY = "tally_w_nWtTky7209IqJc3SEU6D77k_XL0TgKWT6d_XL3P0lPg"  # 'tally_w_' + 43 base64url

WORKED_EXAMPLE = events_frame("example.com", [
    ev(PV, path="/", user_id="u1", timestamp=1_700_000_000_000_000),
    ev(PV, path="/pricing"),
    ev("signup", user_id="u1"),
], sequence=7, ack_requested=True)


def valid_vectors():
    """(name, description, frame, wire_frame). wire_frame, when given, is what is encoded; the
    decoded result is `frame` and the vector is decode-only ("encode": false)."""
    v = []

    def add(name, description, frame, wire_frame=None):
        v.append((name, description, frame, wire_frame))

    add("minimal_single_event",
        "Smallest useful frame: one event with only its event_type, sequence 0, no ACK wanted.",
        events_frame("s", [ev("x")]))
    add("single_event_all_fields",
        "One event with path, user_id and timestamp (event flags 0x07); sequence 1 without "
        "ack_requested (the sequence is then ignored by the server).",
        events_frame("example.com", [ev(PV, "/blog/hello", "user-42", TS)], sequence=1))
    add("repeated_event_types",
        "Same-type flag 0x08 is set only when event_type equals the immediately preceding "
        "event's (byte-wise, case-sensitive).",
        events_frame("shop.example", [
            ev(PV, "/", None, TS), ev(PV, "/cart", None, TS + 1), ev("click", "/cart", None, TS + 2),
            ev("Click", "/cart", None, TS + 3), ev(PV, "/checkout", None, TS + 4),
            ev(PV, "/done", None, TS + 5)]))
    add("same_type_event_is_one_byte",
        "An event repeating the previous event_type with no optional field is the single byte 0x08.",
        events_frame("s", [ev("ping"), ev("ping"), ev("ping")]))
    add("optional_field_combinations",
        "Every subset of optional fields; fields always appear in the order event_type, path, "
        "user_id, timestamp.",
        events_frame("s", [ev("a"), ev("a", path="/p"), ev("a", user_id="u"), ev("a", timestamp=TS),
                           ev("a", path="/p", timestamp=TS), ev("a", user_id="u", timestamp=TS),
                           ev("a", path="/p", user_id="u"), ev("a", "/p", "u", TS)]))
    add("unicode_strings",
        "Multi-byte UTF-8 in every string, including a 4-byte sequence; lengths count bytes.",
        events_frame("münchen.example", [
            ev("ansicht_🙂", "/日本語/ページ?q=é", "Ωμέγα-7", TS),
            ev("ansicht_🙂", "/emoji/🎉🎉", None, None)], sequence=3))
    add("max_field_lengths",
        "Every field at its byte cap: site_id 128 bytes (64 x U+00E9), event_type 64, path "
        "2048, user_id 256 bytes (128 x U+00FC).",
        events_frame("é" * 64, [ev("t" * 64, "/" + "p" * 2047, "ü" * 128, TS)]))
    add("timestamp_range_edges",
        "Smallest and largest accepted timestamps (0 and 4102444799999999 µs), and one absent "
        "(the receiver stamps it with its receive time).",
        events_frame("s", [ev("t", timestamp=0), ev("t", timestamp=MAX_TIMESTAMP - 1), ev("t")]))
    add("ack_requested_max_sequence",
        "Frame flag 0x01 with sequence 2^64-1 (note: exceeds 2^53, parse the JSON number exactly).",
        events_frame("s", [ev(PV, "/")], sequence=0xFFFF_FFFF_FFFF_FFFF, ack_requested=True))
    add("count_258_events",
        "258 events (count bytes 01 02, big-endian): one with its type, then 257 one-byte repeats.",
        events_frame("s", [ev("hit")] * 258))
    add("worked_example",
        "The worked example of PROTOCOL.md.", WORKED_EXAMPLE)
    add("empty_optional_fields_decode_as_absent",
        "Path and user_id present with zero length (flags 0x03 and 0x0b) decode as absent. Decode-only: "
        "re-encoding the decoded frame omits them.",
        events_frame("s", [ev("a", None, None, TS), ev("a", None, None, None)]),
        events_frame("s", [ev("a", "", "", TS), ev("a", "", "", None)]))
    add("ack_frame",
        "Server to sender: events of ack-requested frames up to sequence 42 are durable.",
        {"type": "ack", "sequence": 42})
    add("ack_frame_max_sequence",
        "ACK with sequence 2^64-1.",
        {"type": "ack", "sequence": 0xFFFF_FFFF_FFFF_FFFF})
    add("error_frame_invalid_flags",
        "Server to sender: ERROR code 8 (invalid_flags) with a detail message; the server closes "
        "the connection after it.",
        {"type": "error", "code": 8, "message": "unknown frame flags 0x2"})
    add("error_frame_overloaded",
        "ERROR code 12 (overloaded), sent when the server is shutting down.",
        {"type": "error", "code": 12, "message": "server shutting down"})
    add("error_frame_empty_message",
        "ERROR frame whose message is the empty string.",
        {"type": "error", "code": 5, "message": ""})
    add("v2_attribution_and_client",
        "Version 2: an event with referrer and UTM values (flag 0x10) and the client address and "
        "User-Agent an edge proxy forwards (flag 0x20), then one with neither.",
        events_frame("shop.example", [
            ev2(PV, "/landing", None, TS, referrer="https://news.example/item?id=1", utm_source="newsletter",
                utm_medium="email", utm_campaign="winter sale", client_address="203.0.113.7",
                user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                           "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"),
            ev2(PV, "/next", None, TS + 1)], sequence=7, ack_requested=True))
    add("v2_partial_attribution",
        "Version 2: only some attribution values; the others are written as zero-length strings "
        "and read as absent. IPv6 client address without a User-Agent.",
        events_frame("s", [ev2("click", referrer="t.co", client_address="2001:db8::1"),
                           ev2("click", utm_campaign="launch")]))
    add("error_frame_unauthorized",
        "ERROR code 13 (unauthorized): the AUTH frame's key is not a write key of any registered "
        "site, or an EVENTS frame's site needs a key the connection has not presented.",
        {"type": "error", "code": 13, "message": "unauthorized"})
    add("auth_frame",
        "Version 2 AUTH (type 0x02): a write key of the usual form, 'tally_w_' and 43 base64url "
        "characters (61 bytes in all).",
        {"type": "auth", "key": WRITE_KEY})
    add("auth_frame_empty_key",
        "AUTH with a zero-length key decodes: the decoder checks only the layout. The server "
        "refuses the key (ERROR 13); that is its decision, not a decoding result.",
        {"type": "auth", "key": ""})
    add("auth_ok_frame",
        "Server to sender, version 2 AUTH_OK (type 0x83): the key's site and its key id.",
        {"type": "auth_ok", "site_id": "example.com", "key_id": "k0123456789ab"})
    add("auth_ok_frame_unicode_site",
        "AUTH_OK for a site_id with multi-byte UTF-8; the length counts bytes.",
        {"type": "auth_ok", "site_id": "münchen.example", "key_id": "k5e3f00a1c2d4"})
    return v


def ev2(event_type, path=None, user_id=None, timestamp=None, **extra):
    e = ev(event_type, path, user_id, timestamp)
    e.update({k: extra.get(k) for k in ATTRIBUTION + CLIENT})
    return e


def invalid_vectors():
    ok_event = raw_event(0, "t")
    v = []

    def add(name, description, data, error):
        assert error in ERROR_CODES or error == NEED_MORE_DATA, error
        v.append((name, description, data, error))

    # Header
    add("need_more_data_empty", "No bytes at all.", b"", NEED_MORE_DATA)
    add("need_more_data_partial_header",
        "Three bytes of a header: a decoder waits for the full 8-byte header.",
        MAGIC + u8(VERSION), NEED_MORE_DATA)
    add("need_more_data_short_second_magic_byte_unchecked",
        "Fewer than 8 bytes are only checked against the first magic byte; 'T' 0x00 waits.",
        b"T\x00", NEED_MORE_DATA)
    add("need_more_data_payload_incomplete",
        "Sound header declaring a 20-byte payload, 5 bytes present.",
        frame_bytes(TYPE_EVENTS, b"\x00" * 5, length=20), NEED_MORE_DATA)
    add("bad_magic_first_byte", "A single byte that cannot start a frame is rejected at once.",
        b"\x00", "bad_magic")
    add("bad_magic_second_byte", "'TX' instead of 'TY' in a full header.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [ok_event]), magic=b"TX"), "bad_magic")
    add("bad_magic_http_request", "An HTTP request sent to the wire port.",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_magic")
    add("unsupported_version_3", "Version byte 3, otherwise a valid EVENTS frame.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [ok_event]), version=3), "unsupported_version")
    add("v1_with_attribution_flag", "Version 1 with event flag 0x10, which only version 2 defines.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(EV_ATTRIBUTION) + string("t") + string("") * 4])),
        "invalid_flags")
    add("v2_visit_flag_from_sender", "Version 2 with event flag 0x40: what the server derives is never accepted from a sender.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(EV_VISIT) + string("t")]), version=2), "invalid_flags")
    add("v2_attribution_truncated", "Version 2, flag 0x10 but only two of the four strings.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(EV_ATTRIBUTION) + string("t") + string("a") + string("b")]), version=2),
        "truncated")
    add("v2_referrer_too_long", "Version 2, a referrer of 2049 bytes.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(EV_ATTRIBUTION) + string("t") + string("r" * 2049) + string("") * 3]),
                    version=2), "invalid_event")
    add("v2_user_agent_too_long", "Version 2, a User-Agent of 1025 bytes.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(EV_CLIENT) + string("t") + string("192.0.2.1") + string("u" * 1025)]),
                    version=2), "invalid_event")
    add("unsupported_version_0_header_only",
        "Version byte 0; the version is checked as soon as the 8 header bytes are there.",
        frame_bytes(TYPE_EVENTS, b"", version=0, length=100), "unsupported_version")
    add("unknown_frame_type_0x02", "Frame type 0x02 with an empty payload.",
        frame_bytes(0x02, b""), "unknown_frame_type")
    add("unknown_frame_type_0x00", "Frame type 0x00 with a 3-byte payload (consumed whole).",
        frame_bytes(0x00, b"abc"), "unknown_frame_type")
    add("frame_too_large_header_only",
        "Declared payload length 1048577 (1 MiB + 1), rejected from the header alone.",
        frame_bytes(TYPE_EVENTS, b"", length=MAX_PAYLOAD + 1), "frame_too_large")
    add("frame_too_large_before_type_check",
        "Unknown type 0x7f and length 0xffffffff: the length is checked first.",
        frame_bytes(0x7F, b"", length=0xFFFFFFFF), "frame_too_large")
    # Structure of EVENTS payloads
    add("truncated_events_flags_only", "EVENTS payload of 1 byte: frame flags without sequence.",
        frame_bytes(TYPE_EVENTS, b"\x00"), "truncated")
    add("truncated_events_site_length_overruns",
        "site_id length prefix 10 with 3 bytes left in the payload.",
        frame_bytes(TYPE_EVENTS, u8(0) + u64(0) + u16(10) + b"abc"), "truncated")
    add("truncated_events_no_count", "Payload ends after the site_id.",
        frame_bytes(TYPE_EVENTS, u8(0) + u64(0) + string("s")), "truncated")
    add("truncated_count_exceeds_remaining_bytes",
        "Event count 3 with only 2 bytes left: rejected before any event is read.",
        raw_events("s", [ok_event[:2]], count=3), "truncated")
    add("truncated_event_type_cut",
        "event_type length prefix 5 with 2 bytes left.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [u8(0) + u16(5) + b"ab"])), "truncated")
    add("truncated_timestamp_cut",
        "Timestamp flag set but only 4 of the 8 timestamp bytes present.",
        raw_events("s", [raw_event(EV_TIMESTAMP, "t", ts_bytes=b"\x00\x00\x00\x00")]), "truncated")
    add("truncated_second_event_missing_path",
        "Second event has the path flag but the payload ends after its flags byte.",
        raw_events("s", [ok_event, u8(EV_SAME_TYPE | EV_PATH)]), "truncated")
    add("truncated_ack", "ACK payload of 4 bytes instead of 8.",
        frame_bytes(TYPE_ACK, u32(1)), "truncated")
    add("truncated_error", "ERROR payload of 1 byte (the code needs 2).",
        frame_bytes(TYPE_ERROR, b"\x00"), "truncated")
    add("trailing_bytes_events", "A valid EVENTS payload followed by one extra byte.",
        frame_bytes(TYPE_EVENTS, raw_events_payload("s", [ok_event]) + b"\x00"), "trailing_bytes")
    add("trailing_bytes_ack", "ACK payload of 9 bytes.",
        frame_bytes(TYPE_ACK, u64(1) + b"\x00"), "trailing_bytes")
    # Strings
    add("invalid_utf8_site_id", "site_id contains the byte 0xff.",
        raw_events(b"ab\xff", [ok_event]), "invalid_utf8")
    add("invalid_utf8_overlong_event_type", "event_type holds the overlong encoding c0 af of '/'.",
        raw_events("s", [raw_event(0, b"\xc0\xaf")]), "invalid_utf8")
    add("invalid_utf8_surrogate_path", "path holds ed a0 80 (an encoded UTF-16 surrogate, U+D800).",
        raw_events("s", [raw_event(EV_PATH, "t", b"/\xed\xa0\x80")]), "invalid_utf8")
    add("invalid_utf8_cut_sequence_user_id",
        "user_id ends inside a 3-byte sequence (e2 82 without its last byte).",
        raw_events("s", [raw_event(EV_USER, "t", user_id=b"u\xe2\x82")]), "invalid_utf8")
    add("invalid_utf8_beyond_u10ffff", "event_type holds f4 90 80 80 (U+110000).",
        raw_events("s", [raw_event(0, b"\xf4\x90\x80\x80")]), "invalid_utf8")
    add("invalid_utf8_error_message", "ERROR frame whose message is not UTF-8.",
        frame_bytes(TYPE_ERROR, u16(5) + string(b"\xfe")), "invalid_utf8")
    # Flags and counts
    add("invalid_flags_frame", "Frame flags 0x02 (only 0x01 is defined).",
        raw_events("s", [ok_event], flags=0x02), "invalid_flags")
    add("invalid_flags_frame_high_bit", "Frame flags 0x81.",
        raw_events("s", [ok_event], flags=0x81), "invalid_flags")
    add("invalid_flags_event", "Event flags 0x10 (only 0x0f are defined).",
        raw_events("s", [raw_event(0x10, "t")]), "invalid_flags")
    add("invalid_flags_second_event", "Second event has flags 0x88.",
        raw_events("s", [ok_event, u8(0x88)]), "invalid_flags")
    add("empty_frame", "Event count 0.",
        raw_events("s", [], count=0), "empty_frame")
    add("missing_event_type_first_event",
        "First event sets the same-type flag 0x08: there is no previous event_type.",
        raw_events("s", [u8(EV_SAME_TYPE), ok_event], count=2), "missing_event_type")
    # Field validation
    add("invalid_event_empty_site_id", "site_id is the empty string.",
        raw_events("", [ok_event]), "invalid_event")
    add("invalid_event_empty_event_type", "event_type is the empty string.",
        raw_events("s", [raw_event(0, "")]), "invalid_event")
    add("invalid_event_site_id_129_bytes",
        "site_id of 129 bytes (65 characters): caps count UTF-8 bytes.",
        raw_events("é" * 64 + "x", [ok_event]), "invalid_event")
    add("invalid_event_event_type_65_bytes", "event_type of 65 bytes.",
        raw_events("s", [raw_event(0, "t" * 65)]), "invalid_event")
    add("invalid_event_path_2049_bytes", "path of 2049 bytes.",
        raw_events("s", [raw_event(EV_PATH, "t", "/" + "p" * 2048)]), "invalid_event")
    add("invalid_event_user_id_257_bytes", "user_id of 257 bytes.",
        raw_events("s", [raw_event(EV_USER, "t", user_id="u" * 257)]), "invalid_event")
    add("invalid_event_negative_timestamp", "Timestamp -1 (before 1970-01-01T00:00:00Z).",
        raw_events("s", [raw_event(EV_TIMESTAMP, "t", timestamp=-1)]), "invalid_event")
    add("invalid_event_timestamp_year_2100",
        "Timestamp 4102444800000000 (2100-01-01T00:00:00Z, the exclusive upper bound).",
        raw_events("s", [raw_event(EV_TIMESTAMP, "t", timestamp=MAX_TIMESTAMP)]), "invalid_event")
    add("invalid_event_timestamp_in_nanoseconds",
        "Timestamp 1700000000000000000 (nanoseconds by mistake) is out of range.",
        raw_events("s", [raw_event(EV_TIMESTAMP, "t", timestamp=1_700_000_000_000_000_000)]), "invalid_event")
    add("invalid_event_second_event_rejects_frame",
        "First event valid, second has a 65-byte event_type: the whole frame is rejected.",
        raw_events("s", [ok_event, raw_event(0, "t" * 65)]), "invalid_event")
    # AUTH and AUTH_OK (version 2 only)
    add("auth_in_version_1", "A well-formed AUTH payload in a version-1 frame: version 1 does not define type 0x02.",
        frame_bytes(TYPE_AUTH, string(WRITE_KEY)), "unknown_frame_type")
    add("auth_ok_in_version_1", "A well-formed AUTH_OK payload in a version-1 frame: version 1 does not define type 0x83.",
        frame_bytes(TYPE_AUTH_OK, string("example.com") + string("k0123456789ab")), "unknown_frame_type")
    add("truncated_auth", "AUTH payload of 1 byte: the key's length prefix needs 2.",
        frame_bytes(TYPE_AUTH, b"\x00", version=VERSION2), "truncated")
    add("truncated_auth_key", "AUTH key length prefix 43 with 10 bytes left in the payload.",
        frame_bytes(TYPE_AUTH, u16(43) + b"tally_w_ab", version=VERSION2), "truncated")
    add("trailing_bytes_auth", "A valid AUTH payload followed by one extra byte.",
        frame_bytes(TYPE_AUTH, string(WRITE_KEY) + b"\x00", version=VERSION2), "trailing_bytes")
    add("invalid_utf8_auth_key", "AUTH key contains the byte 0xff.",
        frame_bytes(TYPE_AUTH, string(b"tally_w_\xff"), version=VERSION2), "invalid_utf8")
    add("truncated_auth_ok", "AUTH_OK payload ends after the site_id: key_id missing.",
        frame_bytes(TYPE_AUTH_OK, string("example.com"), version=VERSION2), "truncated")
    add("trailing_bytes_auth_ok", "A valid AUTH_OK payload followed by one extra byte.",
        frame_bytes(TYPE_AUTH_OK, string("example.com") + string("k0123456789ab") + b"\x00", version=VERSION2),
        "trailing_bytes")
    return v


# --- Output ----------------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
VALID_PATH = os.path.join(HERE, "valid.json")
INVALID_PATH = os.path.join(HERE, "invalid.json")


def canonically_equivalent(a, b):
    return unicodedata.normalize("NFD", a) == unicodedata.normalize("NFD", b)


def build():
    valid = []
    for name, description, frame, wire_frame in valid_vectors():
        if frame["type"] == "events":
            types = [e["event_type"] for e in frame["events"]]
            for a, b in zip(types, types[1:]):
                # Swift compares Strings by canonical equivalence; keep vectors unambiguous.
                assert a == b or not canonically_equivalent(a, b), name
        data = encode(wire_frame or frame)
        entry = {"name": name, "description": description, "hex": data.hex(), "frame": frame}
        if wire_frame is not None:
            entry["encode"] = False
        valid.append(entry)
    invalid = [{"name": n, "description": d, "hex": data.hex(), "error": e}
               for n, d, data, e in invalid_vectors()]
    for vectors in (valid, invalid):
        names = [x["name"] for x in vectors]
        assert len(names) == len(set(names)), "duplicate vector names"
    return valid, invalid


def dump(vectors):
    return json.dumps(vectors, indent=2, ensure_ascii=False) + "\n"


def check(valid, invalid):
    failures = []
    for v in valid:
        data = bytes.fromhex(v["hex"])
        try:
            result = decode(data)
        except Rejection as r:
            failures.append(f"valid/{v['name']}: rejected ({r})")
            continue
        if result == NEED_MORE_DATA:
            failures.append(f"valid/{v['name']}: decoder wants more data")
            continue
        frame, consumed = result
        if consumed != len(data):
            failures.append(f"valid/{v['name']}: consumed {consumed} of {len(data)} bytes")
        if frame != v["frame"]:
            failures.append(f"valid/{v['name']}: decoded {frame!r}")
        reencoded = encode(v["frame"])
        if v.get("encode", True) and reencoded != data:
            failures.append(f"valid/{v['name']}: encodes to {reencoded.hex()}")
        if not v.get("encode", True) and reencoded == data:
            failures.append(f"valid/{v['name']}: marked decode-only but re-encodes identically")
    for v in invalid:
        data = bytes.fromhex(v["hex"])
        try:
            result = decode(data)
            got = NEED_MORE_DATA if result == NEED_MORE_DATA else "a valid frame"
        except Rejection as r:
            got = r.label
        if got != v["error"]:
            failures.append(f"invalid/{v['name']}: expected {v['error']}, got {got}")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="verify the vector files instead of writing them")
    args = parser.parse_args()
    valid, invalid = build()
    texts = {VALID_PATH: dump(valid), INVALID_PATH: dump(invalid)}
    if not args.check:
        for path, text in texts.items():
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        print(f"wrote {len(valid)} valid and {len(invalid)} invalid vectors")
        return 0
    failures = []
    for path, text in texts.items():
        try:
            with open(path, encoding="utf-8") as f:
                on_disk = f.read()
        except OSError as e:
            failures.append(f"{os.path.basename(path)}: {e}")
            continue
        if on_disk != text:
            failures.append(f"{os.path.basename(path)}: differs from the generated vectors (run without --check)")
    with open(VALID_PATH, encoding="utf-8") as f:
        file_valid = json.load(f)
    with open(INVALID_PATH, encoding="utf-8") as f:
        file_invalid = json.load(f)
    failures += check(file_valid, file_invalid)
    for line in failures:
        print("FAIL", line)
    if failures:
        return 1
    print(f"ok: {len(file_valid)} valid and {len(file_invalid)} invalid vectors check out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
