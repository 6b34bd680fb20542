# Captures D-Bus messages as a bus delivers them, for the dbus_signal seed corpus of fuzz/:
# NetworkManager's signals (sent by a connection that owns its name), the bus driver's
# NameOwnerChanged, and a signal forged by another connection. Run by fuzz/seeds/capture.sh
# against a private dbus-daemon. Standard library only.
#
#   python3 -I dbus.py BUS_SOCKET OUT_DIR
import os
import socket
import struct
import sys

NM = "org.freedesktop.NetworkManager"
PATH = "/org/freedesktop/NetworkManager"
DRIVER = "org.freedesktop.DBus"
SIGNAL, METHOD_CALL = 4, 1
serial = 0


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


def message(kind, path, interface, member, sig="", body=b"", dest=None):
    global serial
    serial += 1
    fields = [(1, "o", path), (2, "s", interface), (3, "s", member)]
    if dest:
        fields.append((6, "s", dest))
    if sig:
        fields.append((8, "g", sig))
    h = W()
    h.b += b"l" + bytes([kind, 1 if kind == SIGNAL else 0, 1])
    h.u32(len(body))
    h.u32(serial)
    arr = W()
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


def read_raw(sock):
    fixed = read_exact(sock, 16)
    body_len, _serial, fields_len = struct.unpack("<III", fixed[4:16])
    return fixed + read_exact(sock, fields_len + (-(16 + fields_len) % 8) + body_len)


def call(sock, member, sig="", body=b""):
    sock.sendall(message(METHOD_CALL, "/org/freedesktop/DBus", DRIVER, member, sig, body, DRIVER))


def connect(address):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(address)
    uid = str(os.getuid()).encode().hex().encode()
    sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        line += read_exact(sock, 1)
    sock.sendall(b"BEGIN\r\n")
    call(sock, "Hello")
    return sock


def strings(*values):
    w = W()
    for v in values:
        w.s(v)
    return bytes(w.b)


def props(path, interface, entries):
    b = W()
    b.s(interface)
    b.dict_sv(entries)
    b.u32(0)
    return message(SIGNAL, path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                   "sa{sv}as", bytes(b.b))


def main():
    address, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    daemon = connect(address)
    call(daemon, "AddMatch", "s", strings("type='signal'"))
    nm = connect(address)
    w = W()
    w.s(NM)
    w.u32(0)
    call(nm, "RequestName", "su", bytes(w.b))
    dev = PATH + "/Devices/3"
    state = struct.pack("<III", 100, 70, 0)
    sent = [
        props(dev, NM + ".Device", [("Interface", "s", "eth1"), ("State", "u", 100),
                                    ("Ip4Config", "o", PATH + "/IP4Config/7")]),
        props(PATH + "/IP4Config/7", NM + ".IP4Config", [("Gateway", "s", "10.2.0.1")]),
        props(PATH + "/DHCP4Config/7", NM + ".DHCP4Config", [("Options", "u", 1)]),
        message(SIGNAL, dev, NM + ".Device", "StateChanged", "uuu", state),
        message(SIGNAL, PATH, NM, "DeviceAdded", "o", strings(dev)),
        message(SIGNAL, PATH, NM, "DeviceRemoved", "o", strings(dev)),
        message(SIGNAL, "/x", "org.example.Done", "Done"),
    ]
    for m in sent:
        nm.sendall(m)
    forger = connect(address)
    forger.sendall(message(SIGNAL, dev, NM + ".Device", "StateChanged", "uuu", state))
    forger.sendall(message(SIGNAL, "/x", "org.example.Done", "Done"))
    done = 0
    n = 0
    while done < 2:
        raw = read_raw(daemon)
        if raw[1] != SIGNAL:
            continue
        if b"org.example.Done" in raw:
            done += 1
            continue
        with open(os.path.join(out, "signal-%d" % n), "wb") as f:
            f.write(raw)
        n += 1


main()
