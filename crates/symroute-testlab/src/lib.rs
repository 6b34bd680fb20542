//! Network-namespace labs for symroute's root integration tests.
//!
//! Every namespace is created here with a unique name and deleted on drop (also while a test
//! panics), so tests run in parallel and never touch the machine's own network: all `ip`,
//! `sysctl` and `nft` calls go to a namespace this crate made. Everything shells out to
//! iproute2, procps and nftables so that the lab is built independently of symroute's own
//! netlink code, which it is there to test.

pub mod beside;
pub mod daemons;
pub mod hosts;
pub mod lock;
pub mod monitor;
mod rundir;
mod state;
pub mod syslog;
pub mod tunnels;

pub use state::{add_foreign_state, all_rules, assert_foreign_state, route_get, table_of};

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The host's uplink addresses in [`Lab::two_uplinks`] (eth0 via r1, eth1 via r2).
pub const HOST_ETH0_V4: &str = "10.1.0.2";
pub const HOST_ETH1_V4: &str = "10.2.0.2";
pub const HOST_ETH0_V6: &str = "fd01::2";
pub const HOST_ETH1_V6: &str = "fd02::2";
/// The "internet" of [`Lab::add_internet`]: an address of the client namespace that the
/// host reaches through either router.
pub const INTERNET_V4: &str = "198.51.100.1";
pub const INTERNET_V6: &str = "2001:db8:100::1";

/// Writes `line` to the test process's real stderr. libtest captures what `eprintln!` prints
/// and shows it only for a failed test, so a skip said that way would pass in silence: what
/// a skip says goes through here, past the capture, into `cargo test`'s output.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Skips `test`, which does not run by design (see [`slow_tests`]), with a visible
/// `SKIPPED` line saying `why`.
pub fn skip(test: &str, why: &str) {
    say(&format!("SKIPPED {test}: {why}"));
}

/// Whether the slow tests run (minutes each, waiting on real protocol timers): with
/// `SYMROUTE_SLOW_TESTS=1`, and always under `CI=true`, which must not pass without them.
pub fn slow_tests() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var_os("SYMROUTE_SLOW_TESTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether the caller may run root tests. Not root: skipped with a visible message, or a
/// failure when `CI=true` (CI must never pass by skipping).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    require(root, test, "needs root (run as root or via `make test`)")
}

/// Whether `test` can run: `met`, or else it is skipped with a visible `SKIPPED` line saying
/// what it `needs` — and fails under `CI=true`, where everything a test needs is installed.
pub fn require(met: bool, test: &str, needs: &str) -> bool {
    if met {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {needs}, and CI=true");
    }
    skip(test, needs);
    false
}

/// [`require_root`] for the running test, under its own name: libtest runs each test on a
/// thread named after it, so a scenario need not spell its name a second time.
pub fn running_as_root() -> bool {
    let thread = std::thread::current();
    require_root(thread.name().unwrap_or("this test"))
}

/// [`Lab::two_uplinks`] for a root test, or `None` when [`running_as_root`] skips it:
/// `let Some(lab) = root_lab() else { return };` opens a scenario.
pub fn root_lab() -> Option<Lab> {
    running_as_root().then(Lab::two_uplinks)
}

/// The running test's name, for skip messages and test output (see [`running_as_root`]),
/// without its module path.
pub fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("this test");
    name.rsplit("::").next().unwrap_or(name).to_string()
}

/// [`running_as_root`], and the programs the test needs installed
/// ([`daemons::require_programs`]).
pub fn root_with(programs: &[&str]) -> bool {
    running_as_root() && (programs.is_empty() || daemons::require_programs(&test_name(), programs))
}

/// [`root_lab`] for a test that also needs `programs` installed.
pub fn root_lab_with(programs: &[&str]) -> Option<Lab> {
    root_with(programs).then(Lab::two_uplinks)
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// Tests wait for conditions, never for fixed times, so they are fast and not flaky.
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

fn command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

fn output(mut cmd: Command, input: Option<&str>) -> Output {
    let what = format!("{cmd:?}");
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write to {what}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {what}: {e}"))
}

fn stdout_ok(out: Output, what: &dyn std::fmt::Debug) -> String {
    assert!(
        out.status.success(),
        "{what:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `ip netns add` is serialised: on a machine where `/run/netns` is not a mount point yet,
/// concurrent first calls each bind-mount it and can stack mounts.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A network namespace of a test, deleted on drop together with every process left in it.
///
/// IPv4 `all`/`default` settings of a new namespace are copied from the machine's root
/// namespace (`net.core.devconf_inherit_init_net=0`), so [`Netns::new`] pins the ones the
/// labs depend on to kernel defaults: a router or a Docker host running the tests must not
/// change their outcome.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `sr<pid>-<n>-<tag>`, sets loopback up and disables IPv6 DAD and router
    /// advertisements before any link exists (links inherit `default`), so addresses are
    /// usable at once and nothing outside the test configures the namespace.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("sr{}-{n}-{tag}", std::process::id());
        {
            let _serial = NETNS_ADD.lock().unwrap_or_else(|e| e.into_inner());
            let add = command("ip", &["netns", "add", &name]);
            stdout_ok(output(add, None), &format!("ip netns add {name}"));
        }
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns.sysctls(&[
            ("net.ipv4.ip_forward", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.dad_transmits", "0"),
            ("net.ipv6.conf.default.dad_transmits", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
        ]);
        ns
    }

    /// The name for `ip netns exec` / `ip -n`, e.g. to hand to a daemon under test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME argv...`, whatever its exit status.
    pub fn run(&self, argv: &[&str]) -> Output {
        output(self.exec(argv), None)
    }

    /// Like [`Netns::run`], panicking with the command and its stderr on failure; returns
    /// stdout.
    pub fn sh_ok(&self, argv: &[&str]) -> String {
        stdout_ok(self.run(argv), &(&self.name, argv))
    }

    /// Like [`Netns::sh_ok`] with `input` on stdin (`nft -f -`, `ip -batch -`).
    pub fn sh_ok_input(&self, argv: &[&str], input: &str) -> String {
        stdout_ok(output(self.exec(argv), Some(input)), &(&self.name, argv))
    }

    /// `ip ARGS` inside the namespace (args split on whitespace); panics on failure,
    /// returns stdout.
    pub fn ip(&self, args: &str) -> String {
        self.try_ip(args)
            .unwrap_or_else(|e| panic!("ip -n {} {args}: {e}", self.name))
    }

    /// `ip ARGS` inside the namespace; `Err(stderr)` on failure.
    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        let mut argv = vec!["-n", &self.name];
        argv.extend(args.split_whitespace());
        let out = output(command("ip", &argv), None);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Sets one sysctl inside the namespace (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.sysctls(&[(key, value)]);
    }

    /// Sets several sysctls with one process: each `ip netns exec` costs a few ms.
    pub fn sysctls(&self, settings: &[(&str, &str)]) {
        let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut argv = vec!["sysctl", "-q", "-w"];
        argv.extend(pairs.iter().map(String::as_str));
        self.sh_ok(&argv);
    }

    /// Starts a long-running command inside the namespace with stdout and stderr piped.
    /// `ip netns exec` execs the command, so the child's pid is the command's. Kill it
    /// yourself or leave it to the namespace's drop.
    pub fn spawn(&self, argv: &[&str]) -> Child {
        self.exec(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {argv:?} in {}: {e}", self.name))
    }

    /// `ip rule show` lines of one family.
    pub fn rules(&self, v6: bool) -> Vec<String> {
        lines(&self.ip(&format!("{} rule show", family(v6))))
    }

    /// Interface index of `dev`.
    pub fn ifindex(&self, dev: &str) -> u32 {
        let line = self.ip(&format!("-o link show dev {dev}"));
        line.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ifindex in {line:?}"))
    }

    /// `ip route show table TABLE` lines of one family; a table that does not exist is
    /// empty (iproute2 reports it as an error).
    pub fn routes(&self, table: &str, v6: bool) -> Vec<String> {
        self.try_ip(&format!("{} route show table {table}", family(v6)))
            .map(|out| lines(&out))
            .unwrap_or_default()
    }

    /// Whether `dev` is operationally up (for veth: both ends are admin-up).
    pub fn link_up(&self, dev: &str) -> bool {
        self.try_ip(&format!("-o link show dev {dev}"))
            .is_ok_and(|out| out.contains(" state UP "))
    }

    fn exec(&self, argv: &[&str]) -> Command {
        let mut cmd = command("ip", &["netns", "exec", &self.name]);
        cmd.args(argv);
        cmd
    }

    /// The processes inside the namespace (`ip netns pids`). A process started with
    /// [`Netns::spawn`] is listed only once `ip netns exec` has entered the namespace: wait
    /// for its pid here before relying on it being inside.
    pub fn pids(&self) -> Vec<libc::pid_t> {
        let out = output(command("ip", &["netns", "pids", &self.name]), None);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "-6"
    } else {
        "-4"
    }
}

impl Drop for Netns {
    /// Kills what runs inside (a daemon would otherwise keep the namespace alive unnamed),
    /// then deletes it. Never panics while the thread is already panicking, which would
    /// abort the test binary and leave every other lab behind.
    fn drop(&mut self) {
        let gone = wait_until(Duration::from_secs(5), || {
            let pids = self.pids();
            for &pid in &pids {
                // SAFETY: kill has no memory-safety preconditions; a stale pid just fails.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            pids.is_empty()
        });
        let deleted = wait_until(Duration::from_secs(2), || {
            output(command("ip", &["netns", "del", &self.name]), None)
                .status
                .success()
        });
        self.remove_run_dir();
        if !(gone && deleted) {
            let msg = format!("cannot remove netns {} (processes gone: {gone})", self.name);
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Pings `addr` once from `ns` and retries once: the first IPv6 packets of a fresh lab
/// can be lost to neighbour discovery. Returns whether an answer came back; an unreachable
/// address costs about 2 s.
pub fn ping(ns: &Netns, addr: &str) -> bool {
    (0..2).any(|_| {
        ns.run(&["ping", "-n", "-c", "1", "-W", "1", addr])
            .status
            .success()
    })
}

/// A steady flow of pings from a namespace to one address (every 10 ms, 1 s to answer
/// each), to prove that nothing is lost while the host changes. Left running, it is killed
/// with its namespace.
pub struct PingFlow(Child);

impl PingFlow {
    pub fn start(ns: &Netns, addr: &str, count: u32) -> PingFlow {
        let count = count.to_string();
        PingFlow(ns.spawn(&[
            "ping", "-n", "-q", "-i", "0.01", "-c", &count, "-W", "1", addr,
        ]))
    }

    /// Waits for the flow's end; panics, saying `during`, unless every ping was answered.
    pub fn assert_no_loss(self, during: &str) {
        let out = self
            .0
            .wait_with_output()
            .unwrap_or_else(|e| panic!("ping flow: {e}"));
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            summary.contains(" 0% packet loss"),
            "packets lost {during}: {summary}"
        );
    }
}

/// Creates a veth pair `a:a_dev` — `b:b_dev` and sets both ends up. The pair is made
/// inside `a` with its peer placed straight into `b`, so the names only need to be free
/// in their own namespace and the root namespace never sees them.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    a.ip(&format!(
        "link add {a_dev} type veth peer name {b_dev} netns {}",
        b.name()
    ));
    a.ip(&format!("link set {a_dev} up"));
    b.ip(&format!("link set {b_dev} up"));
}

/// The IPv6 reverse-path filter of [`make_strict_router`], with a counter so tests can see
/// what it dropped.
pub const RPF6_TABLE: &str = "table ip6 rpf {
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    fib saddr . iif oif missing counter drop
  }
}
";

/// Makes `ns` a forwarding router with strict reverse-path filtering like an ISP edge:
/// IPv4 by `rp_filter=1` (all, default and every device), IPv6 — which has no such
/// sysctl — by nftables' `fib` check. The nft table is `ip6`, not `inet`: at priority raw
/// an `inet` table would drop IPv4 before the kernel's `rp_filter`, leaving that sysctl
/// (and its `IPReversePathFilter` counter) meaningless.
pub fn make_strict_router(ns: &Netns) {
    let conf = ns.sh_ok(&["ls", "/proc/sys/net/ipv4/conf"]);
    let keys: Vec<String> = conf
        .split_whitespace()
        .map(|dev| format!("net.ipv4.conf.{dev}.rp_filter"))
        .collect();
    let mut settings = vec![
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
    ];
    settings.extend(keys.iter().map(|k| (k.as_str(), "1")));
    ns.sysctls(&settings);
    ns.sh_ok_input(&["nft", "-f", "-"], RPF6_TABLE);
}

/// The two-uplink host, the situation symroute exists for:
///
/// ```text
///   client c1 10.11.0.2 ── up0 r1 down0 10.1.0.1 ── eth0 10.1.0.2 host
///          c2 10.12.0.2 ── up0 r2 down0 10.2.0.1 ── eth1 10.2.0.2
/// ```
/// (IPv6 alike: fd11::/64, fd12::/64, fd01::/64, fd02::/64 with the same host parts.)
/// The host's main table has a default route through each uplink (metrics 100 and 101),
/// so without policy routing every answer leaves through eth0, and r1 — a strict
/// reverse-path-filtering router whose own default points at the client — drops those
/// sourced from 10.2.0.2 / fd02::2.
#[derive(Debug)]
pub struct Lab {
    pub host: Netns,
    pub r1: Netns,
    pub r2: Netns,
    pub client: Netns,
}

impl Lab {
    /// Builds the lab with the host addressed and routed; takes about 0.15 s.
    pub fn two_uplinks() -> Lab {
        let lab = Lab::two_uplinks_unaddressed();
        lab.host.sh_ok_input(
            &["ip", "-batch", "-"],
            "addr add 10.1.0.2/24 dev eth0
             addr add fd01::2/64 dev eth0 nodad
             addr add 10.2.0.2/24 dev eth1
             addr add fd02::2/64 dev eth1 nodad
             route add default via 10.1.0.1 dev eth0 metric 100
             route add default via 10.2.0.1 dev eth1 metric 101
             route add ::/0 via fd01::1 dev eth0 metric 100
             route add ::/0 via fd02::1 dev eth1 metric 101
            ",
        );
        lab
    }

    /// The same topology with the host's eth0/eth1 up but without addresses or routes, for
    /// tests where DHCP or a network manager configures them.
    pub fn two_uplinks_unaddressed() -> Lab {
        // Fields are built in order; if one panics the finished ones are dropped (removed).
        let lab = Lab {
            host: Netns::new("host"),
            r1: Netns::new("r1"),
            r2: Netns::new("r2"),
            client: Netns::new("cl"),
        };
        // With the default arp_announce=0, an ARP request for one uplink's gateway may
        // carry the other uplink's address, which a strict router drops.
        lab.host.sysctl("net.ipv4.conf.all.arp_announce", "2");
        veth(&lab.host, "eth0", &lab.r1, "down0");
        veth(&lab.host, "eth1", &lab.r2, "down0");
        veth(&lab.r1, "up0", &lab.client, "c1");
        veth(&lab.r2, "up0", &lab.client, "c2");

        let mut client = String::new();
        for (router, n) in [(&lab.r1, 1), (&lab.r2, 2)] {
            router.sh_ok_input(
                &["ip", "-batch", "-"],
                &format!(
                    "addr add 10.{n}.0.1/24 dev down0
                     addr add fd0{n}::1/64 dev down0 nodad
                     addr add 10.1{n}.0.1/24 dev up0
                     addr add fd1{n}::1/64 dev up0 nodad
                     route add default via 10.1{n}.0.2
                     route add ::/0 via fd1{n}::2
                    "
                ),
            );
            make_strict_router(router);
            client += &format!(
                "addr add 10.1{n}.0.2/24 dev c{n}
                 addr add fd1{n}::2/64 dev c{n} nodad
                 route add 10.{n}.0.0/24 via 10.1{n}.0.1
                 route add fd0{n}::/64 via fd1{n}::1
                "
            );
        }
        lab.client.sh_ok_input(&["ip", "-batch", "-"], &client);

        let ends = [
            (&lab.host, "eth0"),
            (&lab.host, "eth1"),
            (&lab.r1, "down0"),
            (&lab.r1, "up0"),
            (&lab.r2, "down0"),
            (&lab.r2, "up0"),
            (&lab.client, "c1"),
            (&lab.client, "c2"),
        ];
        for (ns, dev) in ends {
            assert!(
                wait_until(Duration::from_secs(5), || ns.link_up(dev)),
                "{dev} in {} did not come up",
                ns.name()
            );
        }
        lab
    }

    /// Gives the client namespace an "internet" address of each family ([`INTERNET_V4`],
    /// [`INTERNET_V6`], on its loopback: the lab has no dummy links) that both routers reach
    /// through their defaults, so the host reaches it through either uplink. Also lets the
    /// host's root use unprivileged ping sockets (`net.ipv4.ping_group_range`, per namespace
    /// and off in a new one), as upstream systemd's default does on a real host (Debian 12
    /// sets none: the admin does, symroute.toml(5)).
    pub fn add_internet(&self) {
        self.client.ip(&format!("addr add {INTERNET_V4}/32 dev lo"));
        self.client
            .ip(&format!("-6 addr add {INTERNET_V6}/128 dev lo"));
        self.host
            .sysctl("net.ipv4.ping_group_range", "0 2147483647");
    }

    /// `router` loses its upstream: it drops everything for the internet (a blackhole
    /// route), while its link to the host stays up and it still forwards between the host
    /// and the client's own addresses.
    pub fn cut_upstream(router: &Netns) {
        router.ip(&format!("route add blackhole {INTERNET_V4}/32"));
        router.ip(&format!("-6 route add blackhole {INTERNET_V6}/128"));
    }

    /// Undoes [`Lab::cut_upstream`].
    pub fn restore_upstream(router: &Netns) {
        router.ip(&format!("route del blackhole {INTERNET_V4}/32"));
        router.ip(&format!("-6 route del blackhole {INTERNET_V6}/128"));
    }

    /// The host's four addresses the client should reach once routing is symmetric.
    pub fn host_addresses() -> [&'static str; 4] {
        [HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH0_V6, HOST_ETH1_V6]
    }

    /// Panics, with whether each answered, unless the client reaches all four host addresses
    /// (each through its own uplink's strict router: symmetric routing).
    pub fn assert_client_reaches_all(&self) {
        let r: Vec<(&str, bool)> = Lab::host_addresses()
            .into_iter()
            .map(|a| (a, ping(&self.client, a)))
            .collect();
        assert!(r.iter().all(|(_, ok)| *ok), "reachability: {r:?}");
    }
}
