//! VPN clients' routing on a host, without the VPN: a tun device with carrier (this kernel has
//! no WireGuard) and the exact `ip rule`/`ip route` commands wg-quick and tailscaled run, or
//! the routes OpenVPN's `redirect-gateway def1 ipv6` leaves in the tables.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use crate::hosts::in_netns;
use crate::Netns;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// A tun device held open by the test, as a VPN daemon holds its device: it has carrier (a
/// tun device nobody holds has none, and IPv6 then passes over its routes). The device goes
/// away with the last holder, so dropping this removes it.
#[derive(Debug)]
pub struct Tun {
    _file: File,
}

impl Tun {
    /// Creates tun device `name` in `ns`, up, with `addresses` (`ip addr add` syntax, IPv6
    /// ones without DAD).
    pub fn up(ns: &Netns, name: &str, addresses: &[&str]) -> Tun {
        let dev = name.to_string();
        let file = in_netns(ns, move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .unwrap_or_else(|e| panic!("open /dev/net/tun: {e}"));
            // struct ifreq: the name, then the flags.
            let mut ifreq = [0u8; 40];
            ifreq[..dev.len()].copy_from_slice(dev.as_bytes());
            ifreq[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
            // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifreq` is large
            // enough for; the descriptor is open.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, ifreq.as_mut_ptr()) };
            assert_eq!(
                rc,
                0,
                "TUNSETIFF {dev}: {}",
                std::io::Error::last_os_error()
            );
            file
        })
        .join()
        .expect("tun thread");
        let mut batch = format!("link set {name} up\n");
        for address in addresses {
            let nodad = if address.contains(':') { " nodad" } else { "" };
            batch += &format!("addr add {address} dev {name}{nodad}\n");
        }
        ns.sh_ok_input(&["ip", "-batch", "-"], &batch);
        Tun { _file: file }
    }
}

/// Runs each line as `ip LINE` in `ns`, in order.
fn ip_lines(ns: &Netns, lines: &str) {
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        ns.ip(line);
    }
}

/// What `wg-quick up wg0` with `AllowedIPs = 0.0.0.0/0, ::/0` does to the routing (its
/// `add_default`), on the tun device `wg0`: rules added without a priority, so the kernel puts
/// them just ahead of the first rule after `local` (symroute's, when synced).
pub fn wg_quick_full_tunnel(ns: &Netns) {
    ip_lines(
        ns,
        "-4 route add 0.0.0.0/0 dev wg0 table 51820
         -4 rule add not fwmark 51820 table 51820
         -4 rule add table main suppress_prefixlength 0
         -6 route add ::/0 dev wg0 table 51820
         -6 rule add not fwmark 51820 table 51820
         -6 rule add table main suppress_prefixlength 0",
    );
}

/// What tailscaled does with an exit node on the tun device `tailscale0`: rules 5210–5270
/// (its own marked packets skip to main) and table 52 with the default through the tunnel.
pub fn tailscale_exit_node(ns: &Netns) {
    for family in ["-4", "-6"] {
        ip_lines(
            ns,
            &format!(
                "{family} rule add pref 5210 fwmark 0x80000/0xff0000 table main
                 {family} rule add pref 5230 fwmark 0x80000/0xff0000 table default
                 {family} rule add pref 5250 fwmark 0x80000/0xff0000 type unreachable
                 {family} rule add pref 5270 table 52"
            ),
        );
    }
    ip_lines(
        ns,
        "-4 route add 100.100.100.100 dev tailscale0 table 52
         -4 route add throw 127.0.0.0/8 table 52
         -4 route add default dev tailscale0 table 52
         -6 route add ::/0 dev tailscale0 table 52",
    );
}

/// The routes OpenVPN's `redirect-gateway def1 ipv6` installs into `tun0` (none of them half
/// the address space), as `ip -6 route add` arguments.
pub const OPENVPN_DEF1_V6: [&str; 4] = ["::/3", "2000::/4", "3000::/4", "fc00::/7"];
