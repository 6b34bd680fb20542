//! OpenVPN 2.6: a server in a namespace of its own behind r1, and its client on the lab's
//! host, point to point over UDP with a static key made at test time.
//!
//! A static key (`--secret`) is deprecated in 2.6 (it still works, with a warning) and gone
//! in 2.7; what matters here is not the handshake but the routes the client installs for
//! `--redirect-gateway`, which are the same as with a PKI and a pushed option: `0.0.0.0/1`
//! and `128.0.0.0/1` via the tunnel peer, a host route to the server via the old gateway, and
//! for `ipv6` `::/3`, `2000::/4`, `3000::/4`, `fc00::/7` on the tunnel device.

use super::*;
use crate::veth;

/// The VPN server's address behind r1 (r1 has `10.31.0.1/24` on `srv0`).
pub const VPN_SERVER_V4: &str = "10.31.0.2";
/// The tunnel's addresses: the server's end and the client's (the host's `tun0`).
pub const TUNNEL_SERVER_V4: &str = "10.8.0.1";
pub const TUNNEL_CLIENT_V4: &str = "10.8.0.2";
pub const TUNNEL_SERVER_V6: &str = "fd88::1";
pub const TUNNEL_CLIENT_V6: &str = "fd88::2";
/// The tunnel device on both ends.
pub const TUNNEL_DEV: &str = "tun0";

/// One OpenVPN process, stopped on drop.
pub struct OpenVpn {
    name: &'static str,
    daemon: Option<Daemon>,
    log: PathBuf,
}

impl OpenVpn {
    fn start(name: &'static str, ns: &Netns, args: &[String], dir: &TempDir) -> OpenVpn {
        let log = dir.path().join(format!("{name}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(program("openvpn"))
            .args(args);
        OpenVpn {
            name,
            daemon: Some(Daemon::spawn(name, cmd, &log)),
            log,
        }
    }

    /// Waits (15 s at most) until the tunnel is up and every route is installed.
    fn wait_initialized(&mut self) {
        let up = wait_until(Duration::from_secs(15), || {
            read_lossy(&self.log).contains("Initialization Sequence Completed")
        });
        if let Some(d) = self.daemon.as_mut() {
            d.assert_running();
        }
        assert!(
            up,
            "OpenVPN {} did not come up:\n{}",
            self.name,
            tail(&self.log, 30)
        );
    }

    /// Stops it (SIGTERM): the client takes its routes and the tunnel away.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }
}

impl Drop for OpenVpn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- OpenVPN {}, last lines:\n{}",
                self.name,
                tail(&self.log, 30)
            );
        }
        self.stop();
    }
}

/// An OpenVPN server in its own namespace behind `r1` and a client on the lab's host that
/// redirects its default gateway into the tunnel. Fields drop in order: the client (which
/// removes its routes), the server, its namespace, the key.
pub struct OpenVpnTunnel {
    pub client: OpenVpn,
    pub server: OpenVpn,
    pub server_ns: Netns,
    _dir: TempDir,
}

impl OpenVpnTunnel {
    /// Starts both ends and waits until the client's routes are in place. `redirect` is the
    /// client's `--redirect-gateway` flags: `def1`, or `def1 ipv6`.
    pub fn start(lab: &Lab, redirect: &str) -> OpenVpnTunnel {
        let dir = TempDir::new("openvpn");
        let key = dir.path().join("static.key");
        let out = Command::new(program("openvpn"))
            .args(["--genkey", "secret"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("openvpn --genkey: {e}"));
        assert!(
            out.status.success(),
            "openvpn --genkey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let server_ns = Netns::new("vpn");
        veth(&lab.r1, "srv0", &server_ns, "eth0");
        lab.r1.ip("addr add 10.31.0.1/24 dev srv0");
        lab.r1.sysctl("net.ipv4.conf.srv0.rp_filter", "1");
        server_ns.ip(&format!("addr add {VPN_SERVER_V4}/24 dev eth0"));
        server_ns.ip("route add default via 10.31.0.1");

        let key = key.display().to_string();
        let common = |direction: &str, local: (&str, &str), remote: (&str, &str)| {
            [
                "--dev",
                TUNNEL_DEV,
                "--proto",
                "udp",
                "--secret",
                &key,
                direction,
                "--cipher",
                "AES-256-CBC",
                // No kernel data-channel offload module here; say so rather than probe.
                "--disable-dco",
                "--ifconfig",
                local.0,
                remote.0,
                "--ifconfig-ipv6",
                local.1,
                remote.1,
                // A ping a second: the peers find each other at once, not after 10 s.
                "--ping",
                "1",
                "--verb",
                "3",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<String>>()
        };
        let mut server_args = common(
            "0",
            (TUNNEL_SERVER_V4, TUNNEL_SERVER_V6),
            (TUNNEL_CLIENT_V4, TUNNEL_CLIENT_V6),
        );
        server_args.extend(["--lport", "1194"].map(String::from));
        let server = OpenVpn::start("server", &server_ns, &server_args, &dir);

        let mut client_args = common(
            "1",
            (TUNNEL_CLIENT_V4, TUNNEL_CLIENT_V6),
            (TUNNEL_SERVER_V4, TUNNEL_SERVER_V6),
        );
        client_args.extend(
            [
                "--remote",
                VPN_SERVER_V4,
                "1194",
                "--nobind",
                "--redirect-gateway",
            ]
            .map(String::from),
        );
        client_args.extend(redirect.split_whitespace().map(String::from));
        let client = OpenVpn::start("client", &lab.host, &client_args, &dir);

        let mut tunnel = OpenVpnTunnel {
            client,
            server,
            server_ns,
            _dir: dir,
        };
        tunnel.client.wait_initialized();
        tunnel.server.wait_initialized();
        tunnel
    }
}
