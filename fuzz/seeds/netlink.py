# Captures real rtnetlink messages for the seed corpora of fuzz/ (netlink_dump,
# netlink_monitor): dumps of routes, links, addresses and rules, and the notifications of a
# few changes, from the network namespace it runs in. Run by fuzz/seeds/capture.sh inside a
# namespace it builds; never in the machine's own. Standard library only.
#
#   python3 -I netlink.py OUT_DIR
import os
import select
import socket
import struct
import subprocess
import sys

NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE = 3
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
# RTNLGRP_*: link, IPv4/IPv6 addresses, routes and rules.
GROUPS = (1, 5, 7, 8, 9, 11, 19)
DUMPS = {
    "route": (26, bytes(12)),  # RTM_GETROUTE, struct rtmsg
    "link": (18, bytes(16)),  # RTM_GETLINK, struct ifinfomsg
    "addr": (22, bytes(8)),  # RTM_GETADDR, struct ifaddrmsg
    "rule": (34, bytes(12)),  # RTM_GETRULE, struct fib_rule_hdr
}


def save(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def messages(datagram):
    while len(datagram) >= 16:
        (length,) = struct.unpack_from("=I", datagram)
        if length < 16 or length > len(datagram):
            return
        yield datagram[:length]
        datagram = datagram[(length + 3) & ~3:]


def dump(out, name, kind, header):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    request = struct.pack("=IHHII", 16 + len(header), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    s.send(request + header)
    n = 0
    while True:
        datagram = s.recv(1 << 16)
        done = False
        save(out + "/netlink_dump", "%s-datagram-%d" % (name, n), datagram)
        for i, m in enumerate(messages(datagram)):
            if struct.unpack_from("=H", m, 4)[0] == NLMSG_DONE:
                done = True
            else:
                save(out + "/netlink_dump", "%s-%d-%d" % (name, n, i), m)
        n += 1
        if done:
            return


def monitor(out):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.bind((0, 0))
    for g in GROUPS:
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g)
    changes = [
        "ip addr add 10.9.0.2/24 dev eth0",
        "ip route add 10.77.0.0/16 via 10.9.0.1 dev eth0 metric 50 mtu 1400",
        "ip -6 addr add fd09::2/64 dev eth0 nodad",
        "ip -6 route add fd77::/48 via fd09::1 dev eth0 metric 50",
        "ip rule add from 10.9.0.2 lookup 1005 priority 32000 protocol 83",
        "ip route add 10.77.0.0/16 via 10.9.0.1 dev eth0 table 1005 proto 83",
        "ip route del 10.77.0.0/16 table 1005",
        "ip rule del from 10.9.0.2 lookup 1005 priority 32000",
        "ip link set eth0 down",
        "ip link set eth0 up",
        "ip addr del 10.9.0.2/24 dev eth0",
    ]
    for c in changes:
        subprocess.run(c.split(), check=True)
    n = 0
    while select.select([s], [], [], 0.5)[0]:
        save(out + "/netlink_monitor", "event-%d" % n, s.recv(1 << 16))
        n += 1


def main():
    out = sys.argv[1]
    for name, (kind, header) in DUMPS.items():
        dump(out, name, kind, header)
    monitor(out)


main()
