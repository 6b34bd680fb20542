//! Full-tunnel VPNs that route with policy rules of their own, reproduced on a lab's host
//! with the exact commands the tools run. This kernel has no wireguard module, so the
//! tunnel is a persistent tun device (no process behind it: its routes are `linkdown`, which
//! the kernel's lookups still use); everything else — addresses, rules, tables, routes,
//! sysctls, nftables — is what the tools write.
//!
//! Their rules are added without a priority (wg-quick) or below 32000 (tailscaled), so on a
//! host where symroute's rules already exist they come first.

use crate::Netns;

/// wg-quick's interface and its addresses (`Address = 10.66.0.2/32, fd66::2/128`).
pub const WG_DEV: &str = "wg0";
pub const WG_V4: &str = "10.66.0.2";
pub const WG_V6: &str = "fd66::2";
/// The table and fwmark wg-quick picks for `AllowedIPs = 0.0.0.0/0, ::/0` (51820, the
/// first free table from there).
pub const WG_TABLE: u32 = 51820;

/// Tailscale's interface, its addresses, its table and its mark.
pub const TS_DEV: &str = "tailscale0";
pub const TS_V4: &str = "100.64.0.2";
pub const TS_V6: &str = "fd7a:115c:a1e0::2";
pub const TS_TABLE: u32 = 52;
pub const TS_MARK: &str = "0x80000";

/// A persistent tun device `name` (what `ip link add NAME type wireguard` stands for).
fn tun(host: &Netns, name: &str) {
    host.ip(&format!("tuntap add dev {name} mode tun"));
}

/// `wg-quick up wg0` with `AllowedIPs = 0.0.0.0/0, ::/0` and the nftables backend, command
/// by command as wg-quick (1.0.20210914) runs them: addresses, MTU and up, the fwmark, then
/// per family (`add_default`) the two rules, the default route in table 51820, for IPv4
/// `src_valid_mark` (inside this namespace: `net.*` sysctls are per namespace), and its
/// nftables table against spoofed packets to the tunnel address and for the conntrack mark.
pub fn wg_quick_up(host: &Netns) {
    tun(host, WG_DEV);
    host.ip(&format!("-4 address add {WG_V4}/32 dev {WG_DEV}"));
    host.ip(&format!("-6 address add {WG_V6}/128 dev {WG_DEV}"));
    host.ip(&format!("link set mtu 1420 up dev {WG_DEV}"));
    // `wg set wg0 fwmark 51820` marks the tunnel's own UDP packets; nothing sends them here.
    let t = WG_TABLE;
    for (proto, pf, default, addr) in [
        ("-4", "ip", "0.0.0.0/0", WG_V4),
        ("-6", "ip6", "::/0", WG_V6),
    ] {
        host.ip(&format!("{proto} rule add not fwmark {t} table {t}"));
        host.ip(&format!(
            "{proto} rule add table main suppress_prefixlength 0"
        ));
        host.ip(&format!(
            "{proto} route add {default} dev {WG_DEV} table {t}"
        ));
        if proto == "-4" {
            host.sysctl("net.ipv4.conf.all.src_valid_mark", "1");
        }
        let table = format!("wg-quick-{WG_DEV}");
        let nft = format!(
            "add table {pf} {table}\n\
             add chain {pf} {table} preraw {{ type filter hook prerouting priority -300; }}\n\
             add chain {pf} {table} premangle {{ type filter hook prerouting priority -150; }}\n\
             add chain {pf} {table} postmangle {{ type filter hook postrouting priority -150; }}\n\
             add rule {pf} {table} preraw iifname != \"{WG_DEV}\" {pf} daddr {addr} fib saddr type != local drop\n\
             add rule {pf} {table} postmangle meta l4proto udp mark {t} ct mark set mark \n\
             add rule {pf} {table} premangle meta l4proto udp meta mark set ct mark \n"
        );
        host.sh_ok_input(&["nft", "-f", "-"], &nft);
    }
}

/// tailscaled (Linux router, netlink) on a node that uses an exit node: `tailscale0` with its
/// CGNAT and ULA addresses, table 52 with routes to a peer, to the quad-100 resolver and (the
/// exit node) the default route, and per family its four rules: packets carrying its own
/// mark (`0x80000/0xff0000`) use main, then `default`, else are unreachable; everything else
/// looks up table 52 at 5270.
pub fn tailscale_up(host: &Netns) {
    tun(host, TS_DEV);
    host.ip(&format!("link set dev {TS_DEV} mtu 1280 up"));
    host.ip(&format!("addr add {TS_V4}/32 dev {TS_DEV}"));
    host.ip(&format!("addr add {TS_V6}/128 dev {TS_DEV}"));
    let t = TS_TABLE;
    for route in [
        "100.64.0.1/32",
        "100.100.100.100/32",
        "0.0.0.0/0",
        "fd7a:115c:a1e0::1/128",
        "fd7a:115c:a1e0::53/128",
        "::/0",
    ] {
        host.ip(&format!("route add {route} dev {TS_DEV} table {t}"));
    }
    for family in ["-4", "-6"] {
        for rule in [
            format!("priority 5210 fwmark {TS_MARK}/0xff0000 table main"),
            format!("priority 5230 fwmark {TS_MARK}/0xff0000 table default"),
            format!("priority 5250 fwmark {TS_MARK}/0xff0000 type unreachable"),
            format!("priority 5270 table {t}"),
        ] {
            host.ip(&format!("{family} rule add {rule}"));
        }
    }
}
