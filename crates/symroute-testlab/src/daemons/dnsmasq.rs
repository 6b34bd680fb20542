//! dnsmasq: the DHCPv4 server and IPv6 router advertiser of a router namespace, and the lab
//! whose uplinks get their addresses only from it.

use super::*;

/// dnsmasq serving DHCPv4 from a pool (2-minute leases) and, optionally, IPv6 router
/// advertisements (SLAAC) for one prefix, on one interface of a router namespace.
pub struct Dnsmasq {
    netns: String,
    dev: String,
    ra_prefix: Option<String>,
    pool: (String, String),
    extra: Vec<String>,
    dir: TempDir,
    daemon: Option<Daemon>,
}

impl Dnsmasq {
    pub fn start(
        router: &Netns,
        dev: &str,
        pool: (&str, &str),
        ra_prefix: Option<&str>,
    ) -> Dnsmasq {
        Dnsmasq::start_with(router, dev, pool, ra_prefix, &[])
    }

    /// Like [`Dnsmasq::start`] with `extra` options for dnsmasq, e.g.
    /// `--dhcp-option=option:T1,4` so that clients renew after seconds, not a minute.
    pub fn start_with(
        router: &Netns,
        dev: &str,
        pool: (&str, &str),
        ra_prefix: Option<&str>,
        extra: &[&str],
    ) -> Dnsmasq {
        let mut d = Dnsmasq {
            netns: router.name().to_string(),
            dev: dev.to_string(),
            ra_prefix: ra_prefix.map(str::to_string),
            pool: (pool.0.to_string(), pool.1.to_string()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("dnsmasq"),
            daemon: None,
        };
        d.launch();
        d
    }

    fn launch(&mut self) {
        let leases = self.dir.path().join("leases");
        let log = self.dir.path().join("dnsmasq.log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(program("dnsmasq"))
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--bind-interfaces",
                "--user=root",
                "--group=root",
                "--pid-file=",
                "--no-ping",
                "--dhcp-authoritative",
                "--log-dhcp",
                "--log-facility=-",
            ])
            .arg(format!("--interface={}", self.dev))
            .arg(format!("--dhcp-leasefile={}", leases.display()))
            .arg(format!(
                "--dhcp-range={},{},255.255.255.0,2m",
                self.pool.0, self.pool.1
            ));
        cmd.args(&self.extra);
        if let Some(prefix) = &self.ra_prefix {
            cmd.arg("--enable-ra")
                .arg(format!("--dhcp-range={prefix},ra-only,64"));
        }
        let before = read_lossy(&log).len();
        let mut daemon = Daemon::spawn("dnsmasq", cmd, &log);
        let ready = wait_until(Duration::from_secs(10), || {
            read_lossy(&log)
                .get(before..)
                .is_some_and(|new| new.contains("sockets bound exclusively"))
        });
        daemon.assert_running();
        assert!(ready, "dnsmasq did not start:\n{}", tail(&log, 20));
        self.daemon = Some(daemon);
    }

    /// Restarts with a new pool and no memory of earlier leases: a client that asks for its
    /// old address is refused (NAK) and gets one from the new pool.
    pub fn set_pool(&mut self, first: &str, last: &str) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let _ = fs::remove_file(self.dir.path().join("leases"));
        self.pool = (first.to_string(), last.to_string());
        self.launch();
    }

    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("dnsmasq.log"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- dnsmasq in {} ({}), last lines:\n{}",
                self.netns,
                self.dev,
                tail(&self.log_path(), 15)
            );
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }
}

/// IPv4 pools of the routers' DHCP servers (the lab's subnets are 10.1.0.0/24 and 10.2.0.0/24).
pub const POOL_R1: (&str, &str) = ("10.1.0.100", "10.1.0.149");
pub const POOL_R2: (&str, &str) = ("10.2.0.100", "10.2.0.149");
/// A second pool for r2, to force a new address at the next lease.
pub const POOL_R2_NEXT: (&str, &str) = ("10.2.0.150", "10.2.0.199");

/// The two-uplink lab of [`Lab::two_uplinks_unaddressed`] with a DHCP server and IPv6 router
/// advertisements on each router's `down0`: the host's eth0 and eth1 have no addresses and no
/// routes until a network manager on the host configures them from DHCP (10.1.0.100-149 and
/// 10.2.0.100-149, 2-minute leases) and SLAAC (fd01::/64, fd02::/64). The routers keep their
/// IPv6 addresses across link down/up so carrier tests can toggle `down0`.
pub struct DhcpLab {
    pub dhcp1: Dnsmasq,
    pub dhcp2: Dnsmasq,
    pub lab: Lab,
}

impl DhcpLab {
    pub fn two_uplinks() -> DhcpLab {
        DhcpLab::two_uplinks_with(&[])
    }

    /// Like [`DhcpLab::two_uplinks`], both servers run with `extra` dnsmasq options.
    pub fn two_uplinks_with(extra: &[&str]) -> DhcpLab {
        let lab = Lab::two_uplinks_unaddressed();
        for r in [&lab.r1, &lab.r2] {
            r.sysctl("net.ipv6.conf.down0.keep_addr_on_down", "1");
        }
        let dhcp1 = Dnsmasq::start_with(&lab.r1, "down0", POOL_R1, Some("fd01::"), extra);
        let dhcp2 = Dnsmasq::start_with(&lab.r2, "down0", POOL_R2, Some("fd02::"), extra);
        DhcpLab { dhcp1, dhcp2, lab }
    }

    /// The router behind the host's `eth{uplink}` (0 or 1).
    pub fn router(&self, uplink: usize) -> &Netns {
        match uplink {
            0 => &self.lab.r1,
            1 => &self.lab.r2,
            _ => panic!("no uplink {uplink}"),
        }
    }

    /// r2's DHCP server forgets its leases and hands out [`POOL_R2_NEXT`]: the host's eth1
    /// gets a new address at its next lease (refused renewal or new activation).
    pub fn renumber_r2(&mut self) {
        self.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    }

    /// Takes the router's end of `eth{uplink}` down or up: the host sees its carrier go or
    /// come back, nothing on the host is touched.
    pub fn set_carrier(&self, uplink: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        self.router(uplink).ip(&format!("link set down0 {state}"));
    }
}

impl Deref for DhcpLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}
