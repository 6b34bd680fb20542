//! Real network daemons for the end-to-end tests.
//!
//! - [`Dnsmasq`]: the DHCPv4 server (and IPv6 router advertiser) of a router namespace.
//! - [`DhcpLab`]: [`Lab::two_uplinks_unaddressed`] with dnsmasq on both routers, so the host's
//!   uplinks get their addresses and default routes only from DHCP and router advertisements.
//! - [`NetworkManager`]: NetworkManager with a private D-Bus system bus, and
//!   [`Networkd`]: systemd-networkd + networkd-dispatcher with a private D-Bus, each in a
//!   private mount namespace inside the lab's host namespace ([`PrivateMounts`]): `/run`,
//!   `/var/lib/NetworkManager` are private tmpfs, the test's own `/etc/NetworkManager` and
//!   networkd configuration are bind-mounted in, `/sys` is read-only (so the daemons do not wait
//!   for udev). The machine's own NetworkManager, D-Bus, configuration and network are never
//!   touched: everything lives in the test's namespaces and temporary directories.
//!
//! - [`Keepalived`] (VRRP VIPs, FAULT on demand, `use_vmac`), [`OpenVpnTunnel`] (a server behind
//!   r1, the host as its client with `--redirect-gateway`) and [`Bird`] (eBGP with many routes
//!   from a router to the host): third-party peers of a multi-homed host, each run in the lab's
//!   namespaces with configuration and pid files in the test's temporary directories.
//!
//! Dropping any of them (also while a test panics) stops the daemons and every process they
//! started in the private mount namespace, which unmounts everything with the namespace, and
//! removes the temporary directories. On a panic the tails of the daemons' logs are printed
//! (the test harness shows them with the failure); `SYMROUTE_KEEP_TEST_DIRS=1` keeps the
//! directories for a closer look.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{ping, wait_until, Lab, Netns};

mod bird;
mod checks;
mod dnsmasq;
mod keepalived;
mod networkd;
mod openvpn;
mod scenario;

pub use bird::*;
pub use checks::*;
pub use dnsmasq::*;
pub use keepalived::*;
pub use networkd::*;
pub use openvpn::*;
pub use scenario::*;

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// Whether the programs a test needs are installed. Missing: skipped with a visible message,
/// or a failure when `CI=true`.
pub fn require_programs(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: {} not installed (run scripts/install-test-deps.sh)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    crate::say(&format!("SKIPPED {msg}"));
    false
}

/// Absolute path of a program: a name with a slash as it is, else searched in PATH and the
/// usual system directories (PATH may not list sbin; systemd-networkd lives in lib/systemd).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.exists().then_some(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain([
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/lib/systemd",
            "/usr/lib/systemd",
        ])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

/// A temporary directory (mode 0755, owned by the test's user), removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("symroute-test-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        set_mode(&path, 0o755);
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `rel` (and its parents) inside this directory, mode 0755; returns its path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        mkdir_0755(&self.path.join(rel))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SYMROUTE_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn mkdir_0755(path: &Path) -> PathBuf {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    let mut p = path.to_path_buf();
    // Every level we may have created: networkd-dispatcher wants exactly 0755 folders.
    while p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
        set_mode(&p, 0o755);
        if !p.pop() {
            break;
        }
    }
    path.to_path_buf()
}

/// Writes a file with `mode`, creating its folder.
pub fn write_file(path: &Path, contents: &str, mode: u32) {
    if let Some(dir) = path.parent() {
        mkdir_0755(dir);
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of a log file, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = read_lossy(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs the repository's `scripts/install-integrations.sh SBINDIR DESTDIR` with
/// `SYMROUTE_INTEGRATIONS=which` and returns what it printed; panics when it fails.
pub fn install_integrations(sbindir: &Path, destdir: &Path, which: &str) -> String {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-integrations.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(sbindir)
        .arg(destdir)
        .env("SYMROUTE_INTEGRATIONS", which)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {} {} failed:\n{stdout}{}",
        script.display(),
        sbindir.display(),
        destdir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A background process whose stdout and stderr go to a log file; stopped on drop
/// (SIGTERM, then SIGKILL after 3 s).
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Daemon {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = file.try_clone().expect("dup log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Panics (with the log's tail) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}; its log ends with:\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
    }

    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Private mount namespace inside a network namespace

/// A private mount (and UTS) namespace inside a network namespace, held open by an anchor
/// process; programs are started in it with `nsenter`. Mounts made by `setup` exist only in
/// it and vanish with it. Dropping it kills every process left in the namespace.
pub struct PrivateMounts {
    anchor: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    mnt_ns: String,
}

impl PrivateMounts {
    /// `setup` is a shell script run (with `set -e`) in the new namespace before anything else.
    pub fn new(netns: &Netns, setup: &str) -> PrivateMounts {
        let script = format!("set -e\n{setup}\necho ready\nexec cat >/dev/null\n");
        let mut anchor = Command::new("ip")
            .args(["netns", "exec", netns.name()])
            .arg(program("unshare"))
            .args(["--mount", "--uts", "--propagation", "private", "--"])
            .args(["/bin/sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start unshare");
        let mut line = String::new();
        let stdout = anchor.stdout.take().expect("anchor stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = anchor.kill();
            let out = anchor.wait_with_output().expect("wait anchor");
            panic!(
                "private mount namespace setup failed in {}: {}\nscript:\n{script}",
                netns.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pid = anchor.id();
        let mnt_ns = fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .expect("anchor mount namespace")
            .to_string_lossy()
            .into_owned();
        let own = fs::read_link("/proc/self/ns/mnt")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert_ne!(mnt_ns, own, "unshare did not create a mount namespace");
        let stdin = anchor.stdin.take();
        PrivateMounts {
            anchor,
            stdin,
            pid,
            mnt_ns,
        }
    }

    /// A command that runs `program` inside the namespaces (network, mount, UTS).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-m", "-n", "-u", "-F", "--"])
            .arg(program);
        cmd
    }

    /// A command running `argv` (a program looked up like [`find_program`], its arguments)
    /// inside the namespaces, to be spawned.
    pub fn command_argv(&self, argv: &[&str]) -> Command {
        let mut cmd = self.command(&program(argv[0]));
        cmd.args(&argv[1..]);
        cmd
    }

    pub fn run(&self, argv: &[&str]) -> Output {
        self.command_argv(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
    }

    /// `tool ARGS` inside the namespaces (a daemon's control tool: nmcli, networkctl).
    pub fn run_tool(&self, tool: &str, args: &[&str]) -> Output {
        self.run(&[&[tool], args].concat())
    }

    /// Like [`PrivateMounts::run_tool`], panicking with the output on failure; returns stdout.
    pub fn run_tool_ok(&self, tool: &str, args: &[&str]) -> String {
        self.run_ok(&[&[tool], args].concat())
    }

    /// Like [`PrivateMounts::run`], panicking with the output on failure; returns stdout.
    pub fn run_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Where a path inside the namespace can be read from outside.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    /// PIDs of every process in this mount namespace except the anchor.
    fn members(&self) -> Vec<u32> {
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != self.pid)
            .filter(|pid| {
                fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .map(|l| l.to_string_lossy() == self.mnt_ns.as_str())
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Kills every process still in the namespace (daemons' helpers, running scripts).
    pub fn kill_members(&self) {
        for _ in 0..50 {
            let pids = self.members();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: plain kill(2); these processes live only in this test's namespace.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        self.kill_members();
        drop(self.stdin.take());
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

/// Shell lines for [`PrivateMounts::new`] common to both daemons: read-only /sys (no udev:
/// the daemons then do not wait for devices to be "initialized"), a private /run, and no
/// path to the machine's syslog (logs fall back to stderr, into the test's log files).
const COMMON_SETUP: &str = "\
mount -o remount,ro /sys
mount -t tmpfs -o mode=0755 symroute-test /run
mkdir -p /run/dbus
if [ -e /dev/log ] && [ ! -L /dev/log ]; then mount --bind /dev/null /dev/log || true; fi
";

fn quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    assert!(!s.contains('\''), "path with a quote: {s}");
    format!("'{s}'")
}

/// Starts NetworkManager in `mounts` (logging to `dir/NetworkManager.log`) and waits until it
/// answers on the bus.
fn launch_networkmanager(mounts: &PrivateMounts, dir: &Path) -> Daemon {
    let mut cmd = mounts.command(&program("NetworkManager"));
    cmd.arg("--debug");
    let mut nm = Daemon::spawn("NetworkManager", cmd, &dir.join("NetworkManager.log"));
    let nm_ready = wait_until(Duration::from_secs(15), || {
        mounts
            .run(&["nmcli", "-t", "general", "status"])
            .status
            .success()
    });
    nm.assert_running();
    assert!(
        nm_ready,
        "NetworkManager did not come up:\n{}",
        tail(nm.log_path(), 40)
    );
    nm
}

fn start_dbus(mounts: &PrivateMounts, log: &Path) -> Daemon {
    let mut cmd = mounts.command(&program("dbus-daemon"));
    cmd.args(["--system", "--nofork", "--nopidfile", "--nosyslog"]);
    let mut dbus = Daemon::spawn("dbus-daemon", cmd, log);
    let socket = mounts.path("/run/dbus/system_bus_socket");
    let up = wait_until(Duration::from_secs(10), || socket.exists());
    dbus.assert_running();
    assert!(up, "private D-Bus did not start:\n{}", tail(log, 20));
    dbus
}

// ---------------------------------------------------------------------------------------------
// NetworkManager

/// NetworkManager managing some devices of a host namespace with DHCP (IPv4) and SLAAC (IPv6),
/// with its own D-Bus system bus (which activates `nm-dispatcher` on demand, as on a real
/// host) in a private mount namespace.
///
/// `root` plays the file system root for `/etc/NetworkManager`: `root/etc/NetworkManager` is
/// bind-mounted there, so scripts that an installer put into
/// `root/etc/NetworkManager/dispatcher.d` are the only dispatcher scripts NetworkManager runs.
/// [`NetworkManager::start`] adds `NetworkManager.conf`, one keyfile connection per device
/// (`symroute-test-DEV`, route metric 100, 101, ... in order) and a dispatcher script
/// `00-symroute-test-events` that only records `IFACE ACTION` lines (see
/// [`NetworkManager::events`]).
pub struct NetworkManager {
    nm: Option<Daemon>,
    dbus: Option<Daemon>,
    mounts: Option<PrivateMounts>,
    dir: TempDir,
}

impl NetworkManager {
    pub fn start(host: &Netns, root: &Path, devices: &[&str]) -> NetworkManager {
        NetworkManager::start_with_external(host, root, devices, &[])
    }

    /// Like [`NetworkManager::start`], with `external` devices not unmanaged either but
    /// without a connection of their own: NetworkManager only follows what others configure
    /// on them (a bridge Docker creates shows as "connected (externally)").
    pub fn start_with_external(
        host: &Netns,
        root: &Path,
        devices: &[&str],
        external: &[&str],
    ) -> NetworkManager {
        let dir = TempDir::new("nm");
        let etc = mkdir_0755(&root.join("etc/NetworkManager"));
        let events = dir.path().join("events.log");
        write_file(&events, "", 0o644);

        let unmanaged: String = devices
            .iter()
            .chain(external)
            .map(|d| format!(",except:interface-name:{d}"))
            .collect();
        write_file(
            &etc.join("NetworkManager.conf"),
            &format!(
                "[main]\nplugins=keyfile\nno-auto-default=*\ndhcp=internal\ndns=none\n\
                 rc-manager=unmanaged\nhostname-mode=none\nauth-polkit=false\n\n\
                 [keyfile]\nunmanaged-devices=*{unmanaged}\n\n\
                 [connectivity]\nenabled=false\n\n\
                 [logging]\nlevel=INFO\ndomains=DEFAULT,DISPATCH:DEBUG,DHCP4:DEBUG\n"
            ),
            0o644,
        );
        for (i, dev) in devices.iter().enumerate() {
            let metric = 100 + i;
            // may-fail=false for IPv6: NetworkManager then dispatches `up` only once the SLAAC
            // address is there. With the default (may-fail=true) an address that comes later
            // is never announced to dispatcher scripts.
            write_file(
                &etc.join(format!(
                    "system-connections/symroute-test-{dev}.nmconnection"
                )),
                &format!(
                    "[connection]\nid=symroute-test-{dev}\ntype=ethernet\ninterface-name={dev}\n\
                     autoconnect=true\n\n\
                     [ipv4]\nmethod=auto\nroute-metric={metric}\nmay-fail=false\n\n\
                     [ipv6]\nmethod=auto\naddr-gen-mode=eui64\nroute-metric={metric}\n\
                     may-fail=false\n"
                ),
                0o600,
            );
        }
        set_mode(&etc.join("system-connections"), 0o700);
        // NetworkManager runs dispatcher scripts with no PATH: builtins and absolute paths only.
        write_file(
            &etc.join("dispatcher.d/00-symroute-test-events"),
            &format!(
                "#!/bin/sh\n# symroute e2e tests: records the event, does nothing else.\n\
                 echo \"$1 $2\" >> {}\n",
                quote(&events)
            ),
            0o755,
        );

        let setup = format!(
            "{COMMON_SETUP}\
             mount -t tmpfs -o mode=0700 symroute-test /var/lib/NetworkManager\n\
             mount --bind {} /etc/NetworkManager\n",
            quote(&etc)
        );
        let mounts = PrivateMounts::new(host, &setup);
        let dbus = start_dbus(&mounts, &dir.path().join("dbus.log"));

        let nm = launch_networkmanager(&mounts, dir.path());
        NetworkManager {
            nm: Some(nm),
            dbus: Some(dbus),
            mounts: Some(mounts),
            dir,
        }
    }

    fn mounts(&self) -> &PrivateMounts {
        self.mounts.as_ref().expect("mounts")
    }

    /// The address of NetworkManager's system bus, reachable from outside its mount namespace
    /// for as long as the namespace lives, also across restarts of the bus.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}",
            self.mounts().path("/run/dbus/system_bus_socket").display()
        )
    }

    /// Stops NetworkManager (SIGTERM, as a service stop does: the devices keep their
    /// configuration) and starts it again in the same namespaces, on the same bus.
    pub fn restart(&mut self) {
        if let Some(mut nm) = self.nm.take() {
            nm.stop();
        }
        self.nm = Some(launch_networkmanager(self.mounts(), self.dir.path()));
    }

    /// Stops NetworkManager, then the system bus (and whatever the bus had started).
    pub fn stop_bus(&mut self) {
        if let Some(mut nm) = self.nm.take() {
            nm.stop();
        }
        if let Some(mut dbus) = self.dbus.take() {
            dbus.stop();
        }
        self.mounts().kill_members();
        // A socket left behind would make start_bus believe the new bus is up at once.
        let _ = fs::remove_file(self.mounts().path("/run/dbus/system_bus_socket"));
    }

    /// Starts the system bus again, then NetworkManager on it.
    pub fn start_bus(&mut self) {
        self.dbus = Some(start_dbus(self.mounts(), &self.dir.path().join("dbus.log")));
        self.nm = Some(launch_networkmanager(self.mounts(), self.dir.path()));
    }

    /// A command running `argv` inside NetworkManager's namespaces, to be spawned.
    pub fn command(&self, argv: &[&str]) -> Command {
        self.mounts().command_argv(argv)
    }

    pub fn nmcli(&self, args: &[&str]) -> Output {
        self.mounts().run_tool("nmcli", args)
    }

    pub fn nmcli_ok(&self, args: &[&str]) -> String {
        self.mounts().run_tool_ok("nmcli", args)
    }

    /// NetworkManager's state of a device: `connected`, `unavailable`, `disconnected`, ...
    pub fn device_state(&self, dev: &str) -> String {
        let out = self.nmcli(&["-t", "-f", "DEVICE,STATE", "device"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{dev}:")).map(str::to_string))
            .unwrap_or_default()
    }

    /// The dispatcher events so far, `IFACE ACTION` per line, oldest first.
    pub fn events(&self) -> Vec<String> {
        crate::lines(&read_lossy(&self.dir.path().join("events.log")))
    }

    /// Runs a command inside NetworkManager's namespaces.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.mounts().run(argv)
    }

    pub fn log(&self) -> String {
        self.nm.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// What dispatcher scripts wrote to stderr (nm-dispatcher inherits the bus's stderr).
    pub fn dispatcher_output(&self) -> String {
        self.dbus.as_ref().map(Daemon::log).unwrap_or_default()
    }
}

impl Drop for NetworkManager {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- NetworkManager dispatcher events:\n{}\n--- dispatcher scripts' output \
                 (nm-dispatcher, symroute-hook):\n{}\n--- NetworkManager log, last lines:\n{}",
                self.events().join("\n"),
                tail(&self.dir.path().join("dbus.log"), 60),
                tail(&self.dir.path().join("NetworkManager.log"), 80),
            );
        }
        if let Some(mut nm) = self.nm.take() {
            nm.stop();
        }
        if let Some(m) = &self.mounts {
            m.kill_members();
        }
        drop(self.dbus.take());
        drop(self.mounts.take());
    }
}
