//! BIRD 2: eBGP between a router that announces many /32s from a `static` protocol and the
//! lab's host, whose BIRD puts what it learns into the kernel's main table (`proto bird`).

use super::*;

/// The `static` protocol of the announcing router, for [`Bird::disable`] / [`Bird::enable`].
pub const ANNOUNCED: &str = "announced";

/// The `i`-th /32 the router announces: `198.18.0.0` and up (the benchmarking range).
pub fn announced_prefix(i: u32) -> String {
    format!("198.18.{}.{}/32", i / 256 % 256, i % 256)
}

/// One BIRD instance in a namespace with its own control socket, stopped on drop (SIGTERM:
/// the host's BIRD then removes the routes it exported to the kernel).
pub struct Bird {
    name: String,
    daemon: Option<Daemon>,
    dir: TempDir,
}

/// Timers short enough for a test: the first connection attempt after a second, and a
/// retry a second after a refused one (BIRD's defaults wait 5 s and 120 s).
const FAST_BGP: &str =
    "  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 4;\n";

impl Bird {
    /// A router announcing `count` /32s ([`announced_prefix`]) to the eBGP peer `peer`
    /// (AS 65000) from `local` (AS 65002); next hop itself, as eBGP sets it.
    pub fn router_announcing(ns: &Netns, local: &str, peer: &str, count: u32) -> Bird {
        let routes: String = (0..count)
            .map(|i| format!("  route {} blackhole;\n", announced_prefix(i)))
            .collect();
        let conf = format!(
            "log stderr all;\nrouter id {local};\nprotocol device {{ }}\n\
             protocol static {ANNOUNCED} {{\n  ipv4;\n{routes}}}\n\
             protocol bgp downstream {{\n  local {local} as 65002;\n  neighbor {peer} as 65000;\n\
             {FAST_BGP}  ipv4 {{ import none; export all; }};\n}}\n"
        );
        Bird::start("router", ns, &conf)
    }

    /// The host's BIRD: learns everything from the eBGP peer `peer` (AS 65002) on `local`
    /// (AS 65000), exports nothing to it, and writes every route into the kernel's main
    /// table.
    pub fn host_importing(ns: &Netns, local: &str, peer: &str) -> Bird {
        let conf = format!(
            "log stderr all;\nrouter id {local};\nprotocol device {{ }}\n\
             protocol kernel {{\n  ipv4 {{ import none; export all; }};\n}}\n\
             protocol bgp upstream {{\n  local {local} as 65000;\n  neighbor {peer} as 65002;\n\
             {FAST_BGP}  ipv4 {{ import all; export none; }};\n}}\n"
        );
        Bird::start("host", ns, &conf)
    }

    fn start(name: &str, ns: &Netns, conf: &str) -> Bird {
        let dir = TempDir::new(&format!("bird-{name}"));
        let conf_path = dir.path().join("bird.conf");
        write_file(&conf_path, conf, 0o644);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(program("bird"))
            .arg("-f")
            .arg("-c")
            .arg(&conf_path)
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .arg("-P")
            .arg(dir.path().join("bird.pid"));
        let log = dir.path().join("bird.log");
        let mut daemon = Daemon::spawn(&format!("bird ({name})"), cmd, &log);
        let mut bird = Bird {
            name: name.to_string(),
            daemon: None,
            dir,
        };
        let ready = wait_until(Duration::from_secs(10), || {
            bird.birdc(&["show", "status"]).0
        });
        daemon.assert_running();
        assert!(ready, "BIRD ({name}) did not start:\n{}", tail(&log, 20));
        bird.daemon = Some(daemon);
        bird
    }

    /// `birdc` on this instance's control socket: (success, output).
    fn birdc(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(program("birdc"))
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("birdc: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // birdc exits 0 even when BIRD refuses; its reply codes are in the text.
        (out.status.success() && !text.contains("syntax error"), text)
    }

    fn birdc_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.birdc(args);
        assert!(ok, "birdc {args:?} on BIRD ({}) failed: {text}", self.name);
        text
    }

    /// `birdc disable PROTOCOL`: a static protocol withdraws every route it announced.
    pub fn disable(&self, protocol: &str) {
        self.birdc_ok(&["disable", protocol]);
    }

    /// `birdc enable PROTOCOL`: announces them again.
    pub fn enable(&self, protocol: &str) {
        self.birdc_ok(&["enable", protocol]);
    }

    /// `birdc show protocols`, for failure messages.
    pub fn protocols(&self) -> String {
        self.birdc(&["show", "protocols"]).1
    }

    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("bird.log"))
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- BIRD ({}) protocols:\n{}\n--- its log, last lines:\n{}",
                self.name,
                self.protocols(),
                tail(&self.dir.path().join("bird.log"), 20)
            );
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }
}
