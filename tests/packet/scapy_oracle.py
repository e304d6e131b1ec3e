"""Scapy as an independent oracle for tests/packet_*_test.ts (one process per test file).

Reads JSON requests from stdin, one per line, until stdin closes:

    {"build": {NAME: SCAPY_EXPRESSION, ...}, "dissect": {NAME: HEX, ...}}

and answers each with one line of JSON on stdout:

    {"build":   {NAME: {"hex": HEX, "layers": LAYERS}, ...},
     "dissect": {NAME: {"layers": LAYERS, "checksums": CHECKSUMS}, ...}}

A build expression is evaluated with scapy.layers.inet and scapy.layers.inet6 in scope, and
its bytes are dissected again, so LAYERS holds the values scapy computed (lengths, checksums).
LAYERS is a list of {"layer": CLASS_NAME, "fields": {FIELD: VALUE}}: bytes as hex, flags as
integers, nested packets as hex, lists and tuples as lists. CHECKSUMS maps "INDEX:CLASS" of
each checksummed layer up to the first transport layer to {"value": RECEIVED, "expected":
WHAT_SCAPY_COMPUTES}, found by clearing that one field and rebuilding.
"""

import json
import sys

import scapy.layers.inet as inet
import scapy.layers.inet6 as inet6
from scapy.fields import FlagValue
from scapy.packet import Packet, Raw

NAMESPACE = {**vars(inet), **vars(inet6), "Raw": Raw}
CHECKSUM_FIELDS = {"IP": "chksum", "ICMP": "chksum", "UDP": "chksum", "TCP": "chksum"}
TRANSPORT = {"ICMP", "UDP", "TCP"}


def plain(value):
    """A JSON-ready form of a scapy field value."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, FlagValue):
        return int(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Packet):
        return bytes(value).hex()
    return str(value)


def dissect(raw):
    """Dissects raw IP bytes as IPv4 or IPv6 by the version nibble."""
    return inet.IP(raw) if raw[0] >> 4 == 4 else inet6.IPv6(raw)


def layers_of(packet):
    """Each layer of a packet, outermost first."""
    return list(packet.iterpayloads())


def describe(packet):
    """Every layer's class name and field values."""
    return [
        {
            "layer": type(layer).__name__,
            "fields": {f.name: plain(layer.getfieldval(f.name)) for f in layer.fields_desc},
        }
        for layer in layers_of(packet)
    ]


def checksum_field(layer):
    """The checksum field of a layer of ours (not of a quoted packet), or None."""
    name = type(layer).__name__
    if name in CHECKSUM_FIELDS:
        return CHECKSUM_FIELDS[name]
    return "cksum" if name.startswith("ICMPv6") else None


def checksums(raw):
    """Received and recomputed checksums of each layer up to the first transport layer."""
    result = {}
    for index, layer in enumerate(layers_of(dissect(raw))):
        field = checksum_field(layer)
        if field is None:
            continue
        copy = dissect(raw)
        setattr(layers_of(copy)[index], field, None)
        rebuilt = layers_of(dissect(bytes(copy)))[index]
        name = type(layer).__name__
        result[f"{index}:{name}"] = {
            "value": layer.getfieldval(field),
            "expected": rebuilt.getfieldval(field),
        }
        if name in TRANSPORT or name.startswith("ICMPv6"):
            break
    return result


def answer(request):
    """The answer to one request."""
    built = {}
    for name, expression in request.get("build", {}).items():
        raw = bytes(eval(expression, NAMESPACE))  # noqa: S307 - test-authored expressions
        built[name] = {"hex": raw.hex(), "layers": describe(dissect(raw))}
    dissected = {}
    for name, hex_bytes in request.get("dissect", {}).items():
        raw = bytes.fromhex(hex_bytes)
        dissected[name] = {"layers": describe(dissect(raw)), "checksums": checksums(raw)}
    return {"build": built, "dissect": dissected}


def main():
    for line in sys.stdin:
        print(json.dumps(answer(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
