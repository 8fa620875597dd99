#!/usr/bin/env python3
"""Writes seed inputs for pdu_reader_fuzz from the Linux host/nvmet captures.

Usage: fuzz/seeds_from_pcap.py tests/nvmf/vectors/*.pcap  (writes fuzz/corpus/pdu_reader/)

Each seed is pdu_reader_fuzz's configuration byte followed by bytes of one
reassembled TCP direction: a connection's start (ICReq/ICResp and what
follows, parsed as not yet connected), and one PDU of each kind seen (type,
flags, with or without data), parsed as connected with the digests the
connection negotiated. Data PDUs over 8 KiB are cut to 512 bytes of data
(digests recomputed) to keep inputs small. Two TermReqs are made by hand.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pdu_reader")
NAMES = {0: "ic_req", 1: "ic_resp", 2: "h2c_term_req", 3: "c2h_term_req", 4: "capsule_cmd",
         5: "capsule_resp", 6: "h2c_data", 7: "c2h_data", 9: "r2t"}


def flows(path):
    d = open(path, "rb").read()
    assert struct.unpack("<I", d[:4])[0] == 0xA1B2C3D4 and struct.unpack("<I", d[20:24])[0] == 1
    off, out, isn = 24, {}, {}
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8:off + 12])[0]
        p = d[off + 16:off + 16 + incl]
        off += 16 + incl
        if struct.unpack(">H", p[12:14])[0] != 0x0800:
            continue
        ip = p[14:]
        ihl, total = (ip[0] & 15) * 4, struct.unpack(">H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:total]
        key = (ip[12:16], tcp[0:2], ip[16:20], tcp[2:4])
        seq = struct.unpack(">I", tcp[4:8])[0]
        if tcp[13] & 2:
            isn[key] = seq
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            out.setdefault(key, {})[(seq - isn[key] - 1) & 0xFFFFFFFF] = payload
    streams = {}
    for key, segs in out.items():
        buf = bytearray()
        for rel in sorted(segs):
            if rel <= len(buf):
                buf += segs[rel][len(buf) - rel:]
        streams[key] = bytes(buf)
    return streams


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def shrink(pdu, n=512):
    """A data PDU with only its first n data bytes, lengths and digests fixed."""
    flags, hlen, pdo = pdu[1], pdu[2], pdu[3]
    ddgst = 4 if flags & 2 else 0
    out = bytearray(pdu[:pdo] + pdu[pdo:pdo + n])
    struct.pack_into("<I", out, 4, pdo + n + ddgst)
    struct.pack_into("<I", out, 16, n)  # DATAL
    if flags & 1:
        struct.pack_into("<I", out, hlen, crc32c(out[:hlen]))
    if ddgst:
        out += struct.pack("<I", crc32c(out[pdo:]))
    return bytes(out)


def term_req(pdu_type, offending):
    plen = 24 + len(offending)
    return struct.pack("<BBBBIHI10x", pdu_type, 0, 24, 0, plen, 1, 2) + offending


def pdus(stream):
    off = 0
    while off + 8 <= len(stream):
        plen = struct.unpack("<I", stream[off + 4:off + 8])[0]
        yield stream[off:off + plen]
        off += plen


def main():
    os.makedirs(OUT, exist_ok=True)
    seen = set()
    for path in sys.argv[1:]:
        streams = flows(path)
        for key, s in streams.items():
            if s[0] != 0:  # start from the host's direction (ICReq)
                continue
            back = streams[(key[2], key[3], key[0], key[1])]
            dgst = back[11]  # ICResp DGST
            digest_bits = (4 if dgst & 1 else 0) | (8 if dgst & 2 else 0)
            for receiver, stream in ((0, s), (1, back)):
                tag = ("digests" if dgst else "plain") + ("-initiator" if receiver else "-target")
                start = bytes([receiver | digest_bits]) + stream[:2048]
                name = "start-" + tag
                if name not in seen:
                    seen.add(name)
                    open(os.path.join(OUT, name), "wb").write(start)
                for pdu in list(pdus(stream))[1:]:
                    if len(pdu) > 8192:
                        if pdu[0] not in (6, 7):
                            continue
                        pdu = shrink(pdu)
                    kind = "%s-f%d-%s" % (NAMES[pdu[0]], pdu[1], "data" if pdu[3] else "nodata")
                    name = kind + "-" + tag
                    if name in seen:
                        continue
                    seen.add(name)
                    cfg = receiver | 2 | digest_bits
                    open(os.path.join(OUT, name), "wb").write(bytes([cfg]) + pdu)
    for name, cfg, pdu in (("h2c_term_req-target", 0, term_req(2, bytes(range(72)))),
                           ("c2h_term_req-initiator", 3, term_req(3, bytes(range(24))))):
        seen.add(name)
        open(os.path.join(OUT, name), "wb").write(bytes([cfg]) + pdu)
    print("%d seeds in %s" % (len(seen), OUT))


if __name__ == "__main__":
    main()
