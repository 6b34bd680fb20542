//! VPN clients on a host, reproduced with the exact commands their programs run (this kernel
//! has no wireguard module, and tailscaled and charon need peers): each on a tun device that
//! the returned [`Tun`] holds open, as the VPN's own process would, so the tunnel has a
//! carrier and every packet the host sends into it can be read back
//! ([`Tun::saw_packet_to`]). Their rules come without a priority (wg-quick) or below 32000
//! (tailscaled, charon), so on a host where symroute's rules exist they come first.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use crate::hosts::in_netns;
use crate::Netns;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A tun device in a namespace, held open by the test: it exists (with carrier) as long as
/// this value lives, and goes with it.
#[derive(Debug)]
pub struct Tun {
    file: File,
    pub name: String,
}

impl Tun {
    /// Creates tun device `name` in `ns` (down, without addresses: the VPN's commands
    /// configure it).
    pub fn open(ns: &Netns, name: &str) -> Tun {
        let owned = name.to_string();
        let file = in_netns(ns, move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open("/dev/net/tun")
                .unwrap_or_else(|e| panic!("open /dev/net/tun: {e}"));
            let mut req = IfReq {
                name: [0; libc::IFNAMSIZ],
                flags: IFF_TUN | IFF_NO_PI,
                _pad: [0; 22],
            };
            req.name[..owned.len()].copy_from_slice(owned.as_bytes());
            // SAFETY: TUNSETIFF reads a struct ifreq, which `req` is laid out as, and the
            // descriptor is a live /dev/net/tun.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
            assert_eq!(
                rc,
                0,
                "TUNSETIFF {owned}: {}",
                std::io::Error::last_os_error()
            );
            file
        })
        .join()
        .unwrap_or_else(|_| panic!("creating tun {name} failed"));
        Tun {
            file,
            name: name.to_string(),
        }
    }

    /// Whether a packet to `dst` comes out of the tunnel (the host routed it into the tun
    /// device) within `timeout`; other packets are skipped.
    pub fn saw_packet_to(&self, dst: IpAddr, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        let mut file = &self.file;
        while Instant::now() < deadline {
            match file.read(&mut buf) {
                Ok(n) if destination(&buf[..n]) == Some(dst) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("reading tun {}: {e}", self.name),
            }
        }
        false
    }
}

/// The destination of an IPv4 or IPv6 packet.
fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => <[u8; 4]>::try_from(packet.get(16..20)?)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        6 => <[u8; 16]>::try_from(packet.get(24..40)?)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// Where the VPN servers of these reproductions are (reached through eth0).
pub const VPN_SERVER_V4: &str = "198.51.100.7";
/// An address on the Internet beyond every uplink, reached through a full tunnel.
pub const INTERNET_V4: &str = "203.0.113.9";
pub const INTERNET_V6: &str = "2001:db8:99::9";

/// The routes OpenVPN's `redirect-gateway def1 ipv6` installs into the tunnel for IPv6
/// (none of them half the address space), as `ip -6 route add` prefixes.
pub const OPENVPN_DEF1_V6: [&str; 4] = ["::/3", "2000::/4", "3000::/4", "fc00::/7"];

/// OpenVPN 2.6's client with `topology subnet`, `redirect-gateway def1 ipv6` and an IPv6
/// tunnel address, on tun `dev` (which it opens): the server's host route through eth0's
/// gateway, the `0.0.0.0/1` + `128.0.0.0/1` pair through the server's tunnel address, and
/// [`OPENVPN_DEF1_V6`] into the device without a gateway. (A tun device has no ARP, so its
/// IPv6 address needs no DAD, and OpenVPN asks for none.)
#[must_use]
pub fn openvpn_def1_ipv6(host: &Netns, dev: &str) -> Tun {
    let tun = Tun::open(host, dev);
    let mut commands = format!(
        "link set dev {dev} up mtu 1500
         addr add 10.8.0.2/24 dev {dev}
         addr add fd08::2/64 dev {dev}
         route add {VPN_SERVER_V4}/32 via 10.1.0.1
         route add 0.0.0.0/1 via 10.8.0.1
         route add 128.0.0.0/1 via 10.8.0.1
        "
    );
    for prefix in OPENVPN_DEF1_V6 {
        commands += &format!("route add {prefix} dev {dev}\n");
    }
    host.sh_ok_input(&["ip", "-batch", "-"], &commands);
    tun
}

/// wg-quick's table (and fwmark) for a full tunnel: the first free table from 51820.
pub const WG_TABLE: &str = "51820";
/// The tunnel's addresses (`Address = 10.64.0.2/32, fd64::2/128`).
pub const WG_V4: &str = "10.64.0.2";
pub const WG_V6: &str = "fd64::2";

/// `wg-quick up DEV` with `AllowedIPs = 0.0.0.0/0, ::/0` and the nftables backend, command
/// by command as wg-quick (1.0.20210914) runs them after `ip link add DEV type wireguard`
/// (here a tun device the returned [`Tun`] holds: this kernel has no wireguard) and
/// `wg setconf`: addresses, MTU and up, then per family (`add_default`) the two rules that
/// `ip rule add` places before the first rule after `local`, the default route in table
/// 51820, for IPv4 `src_valid_mark` (per namespace, like every `net.*` sysctl), and its
/// nftables table against spoofed packets to the tunnel's address and for the conntrack
/// mark. (`wg set DEV fwmark 51820` marks the tunnel's own UDP packets; none are sent here.)
#[must_use]
pub fn wg_quick_up(host: &Netns, dev: &str) -> Tun {
    let tun = Tun::open(host, dev);
    host.ip(&format!("-4 address add {WG_V4}/32 dev {dev}"));
    host.ip(&format!("-6 address add {WG_V6}/128 dev {dev}"));
    host.ip(&format!("link set mtu 1420 up dev {dev}"));
    let t = WG_TABLE;
    for (proto, pf, default, addr) in [
        ("-4", "ip", "0.0.0.0/0", WG_V4),
        ("-6", "ip6", "::/0", WG_V6),
    ] {
        host.ip(&format!("{proto} rule add not fwmark {t} table {t}"));
        host.ip(&format!(
            "{proto} rule add table main suppress_prefixlength 0"
        ));
        host.ip(&format!("{proto} route add {default} dev {dev} table {t}"));
        if proto == "-4" {
            host.sysctl("net.ipv4.conf.all.src_valid_mark", "1");
        }
        let table = format!("wg-quick-{dev}");
        let nft = format!(
            "add table {pf} {table}\n\
             add chain {pf} {table} preraw {{ type filter hook prerouting priority -300; }}\n\
             add chain {pf} {table} premangle {{ type filter hook prerouting priority -150; }}\n\
             add chain {pf} {table} postmangle {{ type filter hook postrouting priority -150; }}\n\
             add rule {pf} {table} preraw iifname != \"{dev}\" {pf} daddr {addr} fib saddr type != local drop\n\
             add rule {pf} {table} postmangle meta l4proto udp mark {t} ct mark set mark \n\
             add rule {pf} {table} premangle meta l4proto udp meta mark set ct mark \n"
        );
        host.sh_ok_input(&["nft", "-f", "-"], &nft);
    }
    tun
}

/// `wg-quick down` of [`wg_quick_up`]: its rules (each family), the link (`ip link delete`:
/// here the tun device goes with its [`Tun`]), then its nftables tables.
pub fn wg_quick_down(host: &Netns, tun: Tun) {
    let t = WG_TABLE;
    for proto in ["-4", "-6"] {
        host.ip(&format!("{proto} rule delete table {t}"));
        host.ip(&format!(
            "{proto} rule delete table main suppress_prefixlength 0"
        ));
    }
    let table = format!("wg-quick-{}", tun.name);
    drop(tun);
    host.sh_ok(&["nft", "delete", "table", "ip", &table]);
    host.sh_ok(&["nft", "delete", "table", "ip6", &table]);
}

/// tailscaled's routing table, the mark on its own sockets' packets, and its addresses.
pub const TS_TABLE: &str = "52";
pub const TS_MARK: &str = "0x80000";
pub const TS_V4: &str = "100.101.102.103";
pub const TS_V6: &str = "fd7a:115c:a1e0::1234";
pub const TS_PEER_V4: &str = "100.64.0.5";

/// What tailscaled (Linux router, netlink mode) installs on tun `dev`, which it opens: its
/// addresses, peer and MagicDNS routes in table 52, with `exit_node` the default routes
/// there too and the throw route that keeps loopback out of the tunnel, and per family the
/// rules 5210 (packets with its own mark `0x80000/0xff0000`: main), 5230 (default), 5250
/// (unreachable) and 5270 (everything else: table 52).
#[must_use]
pub fn tailscale_up(host: &Netns, dev: &str, exit_node: bool) -> Tun {
    let tun = Tun::open(host, dev);
    let mut v4 = format!(
        "link set dev {dev} up mtu 1280
         addr add {TS_V4}/32 dev {dev}
         addr add {TS_V6}/128 dev {dev}
         route add 100.100.100.100/32 dev {dev} table {TS_TABLE}
         route add {TS_PEER_V4}/32 dev {dev} table {TS_TABLE}
         route add fd7a:115c:a1e0::/48 dev {dev} table {TS_TABLE}
        "
    );
    if exit_node {
        v4 += &format!(
            "route add throw 127.0.0.0/8 table {TS_TABLE}
             route add 0.0.0.0/0 dev {dev} table {TS_TABLE}
             route add ::/0 dev {dev} table {TS_TABLE}
            "
        );
    }
    batch(host, "-4", &v4);
    for family in ["-4", "-6"] {
        batch(
            host,
            family,
            &format!(
                "rule add pref 5210 fwmark {TS_MARK}/0xff0000 table main
                 rule add pref 5230 fwmark {TS_MARK}/0xff0000 table default
                 rule add pref 5250 fwmark {TS_MARK}/0xff0000 type unreachable
                 rule add pref 5270 table {TS_TABLE}
                "
            ),
        );
    }
    tun
}

/// `ip [-6] -batch -` with `text`: without the flag iproute2 takes each address's family
/// from the address and a rule without one for IPv4; with it, everything is IPv6.
fn batch(host: &Netns, family: &str, text: &str) {
    let mut argv = vec!["ip"];
    if family == "-6" {
        argv.push("-6");
    }
    argv.extend(["-batch", "-"]);
    host.sh_ok_input(&argv, text);
}

/// strongSwan's routing table and the virtual IP its client is given.
pub const SWAN_TABLE: &str = "220";
pub const SWAN_VIP: &str = "10.99.0.5";

/// What charon installs for a full-tunnel (`remote_ts = 0.0.0.0/0`) policy-based IPsec
/// client: the virtual IP on the outbound interface eth0, table 220 with the traffic
/// selector's routes through eth0's gateway from that IP (split in two /1s), and the rule
/// `220: from all lookup 220`. (The XFRM policies, which do the tunnelling, are left out:
/// they match only packets from the virtual IP.)
pub fn strongswan_up(host: &Netns) {
    host.sh_ok_input(
        &["ip", "-batch", "-"],
        &format!(
            "addr add {SWAN_VIP}/32 dev eth0
             route add 0.0.0.0/1 via 10.1.0.1 dev eth0 proto static src {SWAN_VIP} table {SWAN_TABLE}
             route add 128.0.0.0/1 via 10.1.0.1 dev eth0 proto static src {SWAN_VIP} table {SWAN_TABLE}
             rule add pref 220 table {SWAN_TABLE}
            "
        ),
    );
}

/// The priorities of symroute's rules (protocol 83) of one family in `ns`, ascending, each
/// once.
pub fn symroute_priorities(ns: &Netns, v6: bool) -> Vec<u32> {
    let mut p: Vec<u32> = ns
        .rules(v6)
        .iter()
        .filter(|r| r.contains(" proto 83") || r.contains(" proto symroute"))
        .filter_map(|r| r.split(':').next()?.trim().parse().ok())
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}
