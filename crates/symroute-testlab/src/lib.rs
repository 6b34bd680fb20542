//! Network-namespace labs for symroute's root tests.
//!
//! Every namespace is created here with a unique name and deleted on drop (also when a test
//! panics), so tests run in parallel and never touch the machine's own network.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const HOST_ETH0_V4: &str = "10.1.0.2";
pub const HOST_ETH1_V4: &str = "10.2.0.2";
pub const HOST_ETH0_V6: &str = "fd01::2";
pub const HOST_ETH1_V6: &str = "fd02::2";

/// Whether the caller may run root tests. Not root: skipped with a visible message, or a
/// failure when `CI=true` (CI must never pass by skipping).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root and CI=true");
    }
    eprintln!("SKIPPED {test}: needs root (run as root or via `sudo make test`)");
    false
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"))
}

fn check(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of a test, deleted on drop with every process left inside it.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("sr{}-{n}-{tag}", std::process::id());
        check("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip("link set lo up");
        // Addresses must be usable at once: no duplicate address detection, no RAs.
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
            "net.ipv6.conf.all.dad_transmits",
            "net.ipv6.conf.default.dad_transmits",
            "net.ipv6.conf.all.accept_ra",
            "net.ipv6.conf.default.accept_ra",
        ] {
            ns.sysctl(key, "0");
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME argv...`
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        run("ip", &args)
    }

    /// Like [`Netns::run`], panicking with the command and its stderr on failure.
    pub fn sh_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip ARGS` inside the namespace; panics on failure.
    pub fn ip(&self, args: &str) -> String {
        match self.try_ip(args) {
            Ok(out) => out,
            Err(e) => panic!("ip -n {} {args}: {e}", self.name),
        }
    }

    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        let mut argv = vec!["-n", &self.name];
        argv.extend(args.split_whitespace());
        let out = run("ip", &argv);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.sh_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Starts a long-running command inside the namespace with stdout and stderr piped.
    pub fn spawn(&self, argv: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {argv:?} in {}: {e}", self.name))
    }

    /// `ip rule show` lines of one family.
    pub fn rules(&self, v6: bool) -> Vec<String> {
        let family = if v6 { "-6" } else { "-4" };
        lines(&self.ip(&format!("{family} rule show")))
    }

    /// `ip route show table TABLE` lines of one family; a table that does not exist is empty.
    pub fn routes(&self, table: &str, v6: bool) -> Vec<String> {
        let family = if v6 { "-6" } else { "-4" };
        self.try_ip(&format!("{family} route show table {table}"))
            .map(|out| lines(&out))
            .unwrap_or_default()
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = run("ip", &["netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            run("kill", &["-9", pid]);
        }
        run("ip", &["netns", "del", &self.name]);
    }
}

/// Sends one ping (retried once: the first IPv6 packets can be lost to neighbour
/// discovery); returns whether an answer came back.
pub fn ping(ns: &Netns, addr: &str) -> bool {
    (0..2).any(|_| {
        ns.run(&["ping", "-n", "-c", "1", "-W", "1", addr])
            .status
            .success()
    })
}

/// Creates a veth pair with one end in each namespace.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    let tmp = format!("srv{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    a.ip(&format!("link add {a_name} type veth peer name {tmp}"));
    a.ip(&format!("link set {tmp} netns {}", b.name()));
    b.ip(&format!("link set {tmp} name {b_name}"));
    a.ip(&format!("link set {a_name} up"));
    b.ip(&format!("link set {b_name} up"));
}

/// Makes `ns` a router with strict reverse-path filtering, IPv4 and IPv6.
pub fn make_strict_router(ns: &Netns, devices: &[&str]) {
    ns.sysctl("net.ipv4.ip_forward", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    for scope in ["all", "default"].iter().chain(devices) {
        ns.sysctl(&format!("net.ipv4.conf.{scope}.rp_filter"), "1");
    }
    // IPv6 has no rp_filter sysctl: the same check in nftables.
    let rules = "table ip6 rpf {\n  chain pre {\n    type filter hook prerouting priority raw; policy accept;\n    \
                 fib saddr . iif oif missing drop\n  }\n}\n";
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nft");
    if let Some(stdin) = child.stdin.as_mut() {
        use std::io::Write;
        stdin.write_all(rules.as_bytes()).expect("write nft rules");
    }
    drop(child.stdin.take());
    assert!(
        child.wait().expect("wait nft").success(),
        "nft rpf rules failed in {}",
        ns.name()
    );
}

/// The two-uplink host: `host` with eth0 → r1 and eth1 → r2, both routers with strict
/// reverse-path filtering, and a `client` behind both routers.
///
/// ```text
///   client c1 10.11.0.2 ── up0 r1 down0 10.1.0.1 ── eth0 10.1.0.2 host
///   client c2 10.12.0.2 ── up0 r2 down0 10.2.0.1 ── eth1 10.2.0.2 host
/// ```
/// The host's main table has a default route through each uplink (metrics 100 and 101),
/// so without policy routing every answer leaves through eth0 and r1 drops those from
/// 10.2.0.2.
pub struct Lab {
    pub host: Netns,
    pub r1: Netns,
    pub r2: Netns,
    pub client: Netns,
}

impl Lab {
    pub fn two_uplinks() -> Lab {
        let lab = Lab::two_uplinks_unaddressed();
        let host = &lab.host;
        host.ip("addr add 10.1.0.2/24 dev eth0");
        host.ip("addr add fd01::2/64 dev eth0 nodad");
        host.ip("addr add 10.2.0.2/24 dev eth1");
        host.ip("addr add fd02::2/64 dev eth1 nodad");
        host.ip("route add default via 10.1.0.1 dev eth0 metric 100");
        host.ip("route add default via 10.2.0.1 dev eth1 metric 101");
        host.ip("-6 route add default via fd01::1 dev eth0 metric 100");
        host.ip("-6 route add default via fd02::1 dev eth1 metric 101");
        lab
    }

    /// The same topology with the host's uplinks up but without addresses or routes, for
    /// tests where DHCP or a network manager configures them.
    pub fn two_uplinks_unaddressed() -> Lab {
        let lab = Lab {
            host: Netns::new("h"),
            r1: Netns::new("r1"),
            r2: Netns::new("r2"),
            client: Netns::new("c"),
        };
        veth(&lab.host, "eth0", &lab.r1, "down0");
        veth(&lab.host, "eth1", &lab.r2, "down0");
        veth(&lab.r1, "up0", &lab.client, "c1");
        veth(&lab.r2, "up0", &lab.client, "c2");
        // ARP requests for the other uplink's gateway must not carry this uplink's address.
        lab.host.sysctl("net.ipv4.conf.all.arp_announce", "2");

        for (router, n) in [(&lab.r1, 1), (&lab.r2, 2)] {
            router.ip(&format!("addr add 10.{n}.0.1/24 dev down0"));
            router.ip(&format!("addr add fd0{n}::1/64 dev down0 nodad"));
            router.ip(&format!("addr add 10.1{n}.0.1/24 dev up0"));
            router.ip(&format!("addr add fd1{n}::1/64 dev up0 nodad"));
            router.ip(&format!("route add default via 10.1{n}.0.2"));
            router.ip(&format!("-6 route add default via fd1{n}::2"));
            make_strict_router(router, &["down0", "up0"]);
            let dev = format!("c{n}");
            lab.client.ip(&format!("addr add 10.1{n}.0.2/24 dev {dev}"));
            lab.client
                .ip(&format!("addr add fd1{n}::2/64 dev {dev} nodad"));
            lab.client
                .ip(&format!("route add 10.{n}.0.0/24 via 10.1{n}.0.1"));
            lab.client
                .ip(&format!("-6 route add fd0{n}::/64 via fd1{n}::1"));
        }
        lab
    }

    /// The host's four addresses the client should reach.
    pub fn host_addresses() -> [&'static str; 4] {
        [HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH0_V6, HOST_ETH1_V6]
    }
}
