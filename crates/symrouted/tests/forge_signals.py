# A hostile local user on the system bus: forges NetworkManager's signals, unicast to a
# victim's unique name and broadcast. Standard library only (run as an unprivileged user, with
# no D-Bus bindings installed). Used by tests/nm_faults.rs.
#
#   python3 -I forge_signals.py SOCKET VICTIM ROUNDS
#
# Prints "unicast-delivered" once it has proved that the bus delivers an unprivileged user's
# unicast signal (to a second connection of its own), then "sent N" after the flood, once the
# bus has routed all of it (a marker sent last came back).
import os
import socket
import struct
import sys

NM = "org.freedesktop.NetworkManager"
PATH = "/org/freedesktop/NetworkManager"
DEVICE = NM + ".Device"
PROPS = "org.freedesktop.DBus.Properties"
DRIVER = "org.freedesktop.DBus"
SIGNAL, METHOD_CALL, METHOD_RETURN = 4, 1, 2


def pad(buf, n):
    buf.extend(b"\0" * (-len(buf) % n))


class W:
    """Marshalling of the few D-Bus types used here (little endian)."""

    def __init__(self):
        self.b = bytearray()

    def u32(self, v):
        pad(self.b, 4)
        self.b += struct.pack("<I", v)

    def s(self, v):
        e = v.encode()
        self.u32(len(e))
        self.b += e + b"\0"

    def g(self, v):
        e = v.encode()
        self.b += bytes([len(e)]) + e + b"\0"

    def variant(self, sig, v):
        self.g(sig)
        if sig == "u":
            self.u32(v)
        else:
            self.s(v)

    def dict_sv(self, entries):
        self.u32(0)
        at = len(self.b) - 4
        pad(self.b, 8)
        start = len(self.b)
        for key, sig, value in entries:
            pad(self.b, 8)
            self.s(key)
            self.variant(sig, value)
        struct.pack_into("<I", self.b, at, len(self.b) - start)


serial = 0


def message(kind, path, interface, member, sig="", body=b"", dest=None):
    global serial
    serial += 1
    fields = [(1, "o", path), (2, "s", interface), (3, "s", member)]
    if dest:
        fields.append((6, "s", dest))
    if sig:
        fields.append((8, "g", sig))
    h = W()
    flags = 1 if kind == SIGNAL else 0  # NO_REPLY_EXPECTED
    h.b += b"l" + bytes([kind, flags, 1])
    h.u32(len(body))
    h.u32(serial)
    arr = W()  # starts at offset 16, which is 8-aligned: relative alignment is absolute
    for code, t, v in fields:
        pad(arr.b, 8)
        arr.b += bytes([code])
        arr.g(t)
        if t == "g":
            arr.g(v)
        else:
            arr.s(v)
    h.u32(len(arr.b))
    h.b += arr.b
    pad(h.b, 8)
    return bytes(h.b) + body


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("bus closed the connection")
        out += chunk
    return out


def read_message(sock):
    fixed = read_exact(sock, 16)
    kind = fixed[1]
    body_len, _serial, fields_len = struct.unpack("<III", fixed[4:16])
    rest = read_exact(sock, fields_len + (-(16 + fields_len) % 8) + body_len)
    fields, body = rest[:fields_len], rest[len(rest) - body_len:]
    return kind, fields, body


def connect(address):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(address)
    uid = str(os.getuid()).encode().hex().encode()
    sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        line += read_exact(sock, 1)
    if not line.startswith(b"OK "):
        raise SystemExit("authentication refused: %r" % line)
    sock.sendall(b"BEGIN\r\n")
    sock.sendall(message(METHOD_CALL, "/org/freedesktop/DBus", DRIVER, "Hello", dest=DRIVER))
    while True:
        kind, _fields, body = read_message(sock)
        if kind == METHOD_RETURN:
            (n,) = struct.unpack("<I", body[:4])
            return sock, body[4:4 + n].decode()


def wait_for(sock, member):
    while True:
        _kind, fields, _body = read_message(sock)
        if member.encode() in fields:
            return


def props(path, interface, entries, dest):
    b = W()
    b.s(interface)
    b.dict_sv(entries)
    b.u32(0)  # no invalidated properties
    return message(SIGNAL, path, PROPS, "PropertiesChanged", "sa{sv}as", bytes(b.b), dest)


def forgeries(i, dest):
    dev = "%s/Devices/forged%d" % (PATH, i)
    cfg = "%s/IP4Config/forged%d" % (PATH, i)
    real_dev = "%s/Devices/%d" % (PATH, i % 6)
    state = W()
    for v in (100, 70, 0):
        state.u32(v)
    state = bytes(state.b)
    added = W()
    added.s(dev)
    owner = W()
    for v in (NM, "", ":1.%d" % (9000 + i)):
        owner.s(v)
    yield props(cfg, NM + ".IP4Config", [("Addresses", "u", i)], dest)
    yield props(
        dev,
        DEVICE,
        [("Interface", "s", "forged%d" % i), ("State", "u", 100), ("Ip4Config", "o", cfg)],
        dest,
    )
    yield message(SIGNAL, dev, DEVICE, "StateChanged", "uuu", state, dest)
    yield message(SIGNAL, real_dev, DEVICE, "StateChanged", "uuu", state, dest)
    yield message(SIGNAL, PATH, NM, "DeviceAdded", "o", bytes(added.b), dest)
    yield message(
        SIGNAL, "/org/freedesktop/DBus", DRIVER, "NameOwnerChanged", "sss", bytes(owner.b), dest
    )


def main():
    address, victim, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    me, _ = connect(address)
    witness, witness_name = connect(address)
    me.sendall(message(SIGNAL, "/forger", "org.example.Forger", "Probe", dest=witness_name))
    wait_for(witness, "Probe")
    print("unicast-delivered", flush=True)
    sent = 0
    for i in range(rounds):
        for dest in (victim, None):
            for m in forgeries(i, dest):
                me.sendall(m)
                sent += 1
    # The bus routes one sender's messages in order: once the marker is back, every forgery
    # before it was delivered (or dropped by the bus's policy).
    me.sendall(message(SIGNAL, "/forger", "org.example.Forger", "Done", dest=witness_name))
    wait_for(witness, "Done")
    print("sent %d" % sent, flush=True)


main()
