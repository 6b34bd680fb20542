//! The steps of the end-to-end tests in which a real daemon manages a host's uplinks, and
//! what they check after each step: the integrations installed as the packages install them,
//! the daemon's dispatched events, the rules of an uplink, what the client reaches.

use super::*;

/// What a test with NetworkManager on the host needs.
pub const NETWORKMANAGER_PROGRAMS: &[&str] = &[
    "NetworkManager",
    "nmcli",
    "dbus-daemon",
    "dnsmasq",
    "nsenter",
    "unshare",
    "nft",
    "ping",
];

/// What a test with systemd-networkd and networkd-dispatcher on the host needs.
pub const NETWORKD_PROGRAMS: &[&str] = &[
    "systemd-networkd",
    "networkctl",
    "networkd-dispatcher",
    "dbus-daemon",
    "dnsmasq",
    "nsenter",
    "unshare",
    "nft",
    "ping",
];

/// The running test's name ([`crate::test_name`]) when it may run: root and every one of
/// `programs` installed ([`crate::root_with`]); `None` when it is skipped.
pub fn ready_test(programs: &[&str]) -> Option<String> {
    crate::root_with(programs).then(crate::test_name)
}

/// Installs the integrations `which` (as in SYMROUTE_INTEGRATIONS) with the project's
/// installer into a fresh root, for the symroute-hook at `hook` (SBINDIR is its folder), and
/// checks that each of `scripts` (paths inside the root) was installed and runs that hook.
pub fn install_for_hook(hook: &str, which: &str, scripts: &[impl AsRef<str>]) -> TempDir {
    let root = TempDir::new("integrations-root");
    let sbindir = Path::new(hook)
        .parent()
        .unwrap_or_else(|| panic!("{hook} has no folder"));
    let installed = install_integrations(sbindir, root.path(), which);
    for script in scripts {
        let path = root.path().join(script.as_ref());
        assert!(
            installed.contains(&path.display().to_string()),
            "{} not installed: {installed}",
            path.display()
        );
        let text = read_lossy(&path);
        assert!(
            text.contains(&format!("={hook}")) && !text.contains("@SBINDIR@"),
            "{} does not run {hook}:\n{text}",
            path.display()
        );
    }
    root
}

/// The states networkd-dispatcher runs symroute's script for.
pub const NETWORKD_DISPATCHER_STATES: [&str; 5] =
    ["routable", "configured", "degraded", "off", "no-carrier"];

/// Where the installer puts symroute's networkd-dispatcher script of every state it handles.
pub fn networkd_dispatcher_scripts() -> Vec<String> {
    NETWORKD_DISPATCHER_STATES
        .iter()
        .map(|state| format!("etc/networkd-dispatcher/{state}.d/50-symroute"))
        .collect()
}

/// A stand-in `symroute-hook` in a folder of its own (the SBINDIR to install the
/// integrations for) that records its arguments, a line per call: for testing the installed
/// scripts without root or the daemon that runs them.
pub struct FakeHook {
    sbin: TempDir,
}

impl FakeHook {
    pub fn new() -> FakeHook {
        let hook = FakeHook {
            sbin: TempDir::new("fake-sbin"),
        };
        hook.replace(&format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n",
            hook.calls_file().display()
        ));
        hook
    }

    /// The folder the stand-in is in.
    pub fn sbin(&self) -> &Path {
        self.sbin.path()
    }

    fn calls_file(&self) -> PathBuf {
        self.sbin.path().join("calls")
    }

    /// Installs the integrations `which` for the stand-in into a fresh root, then again: the
    /// second run must find everything in place. The root and what the first run printed.
    pub fn install_twice(&self, which: &str) -> (TempDir, String) {
        let root = TempDir::new("script-root");
        let first = install_integrations(self.sbin(), root.path(), which);
        let again = install_integrations(self.sbin(), root.path(), which);
        assert!(
            again.contains("unchanged") && !again.contains("installed"),
            "not idempotent: {again}"
        );
        (root, first)
    }

    /// The calls recorded since the last look, forgotten for the next.
    pub fn take_calls(&self) -> String {
        let calls = read_lossy(&self.calls_file());
        let _ = fs::remove_file(self.calls_file());
        calls
    }

    /// Makes the stand-in the script `text` (e.g. one that fails).
    pub fn replace(&self, text: &str) {
        write_file(&self.sbin.path().join("symroute-hook"), text, 0o755);
    }

    /// Removes the stand-in: symroute uninstalled, its scripts left behind.
    pub fn remove(&self) {
        let path = self.sbin.path().join("symroute-hook");
        fs::remove_file(&path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    }
}

impl Default for FakeHook {
    fn default() -> FakeHook {
        FakeHook::new()
    }
}

/// The permission bits of `path` (mode & 0o7777).
pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Global addresses of `dev`, IPv4 ones first, then IPv6.
pub fn uplink_addrs(host: &Netns, dev: &str) -> Vec<String> {
    let mut addrs = global_addrs(host, dev, false);
    addrs.extend(global_addrs(host, dev, true));
    addrs
}

/// symroute's rules (source address, table) into the table of `dev`.
pub fn rules_of(host: &Netns, dev: &str) -> Vec<(String, String)> {
    let table = crate::table_of(host, dev);
    symroute_rules(host)
        .into_iter()
        .filter(|(_, t)| *t == table)
        .collect()
}

/// Panics with them if symroute left rules for addresses that are gone.
pub fn assert_no_stale_rules(host: &Netns) {
    let stale = stale_rules(host);
    assert!(stale.is_empty(), "stale rules: {stale:?}");
}

/// Panics naming the first of `addrs` the client gets no answer from, and `when`.
pub fn assert_reaches(client: &Netns, addrs: &[String], when: &str) {
    for a in addrs {
        assert!(ping(client, a), "{a} unreachable {when}");
    }
}

/// A network daemon that runs dispatcher scripts: NetworkManager, networkd-dispatcher.
pub trait Dispatcher {
    /// The events dispatched so far, `IFACE EVENT` per line, oldest first.
    fn dispatched(&self) -> Vec<String>;

    /// How often `event` (`IFACE EVENT`) was dispatched so far.
    fn count(&self, event: &str) -> usize {
        self.dispatched().iter().filter(|e| *e == event).count()
    }

    /// Waits until `event` was dispatched at least `count` times in all; whether it was.
    fn wait_event(&self, event: &str, count: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.count(event) >= count)
    }
}

impl Dispatcher for NetworkManager {
    fn dispatched(&self) -> Vec<String> {
        self.events()
    }
}

impl Dispatcher for Networkd {
    fn dispatched(&self) -> Vec<String> {
        self.events()
    }
}

/// Waits until `daemon` has dispatched `event` and `then` holds (what the hook run on it
/// should have left); panics with the events and `host`'s routing state after `timeout`.
pub fn wait_dispatched(
    daemon: &impl Dispatcher,
    host: &Netns,
    event: &str,
    timeout: Duration,
    mut then: impl FnMut() -> bool,
) {
    let done = wait_until(timeout, || {
        daemon.dispatched().iter().any(|e| e == event) && then()
    });
    assert!(
        done,
        "not done {timeout:?} after {event}: stale rules {:?}; events {:?}\n{}",
        stale_rules(host),
        daemon.dispatched(),
        routing_state(host)
    );
}

/// The router plugs `eth{uplink}` back in: waits until `devs` are symmetric again (what the
/// hook runs on `daemon`'s events do alone) and logs, for `test`, how long that took and
/// what was dispatched.
pub fn plug_back_until_symmetric(
    test: &str,
    daemon: &impl Dispatcher,
    lab: &DhcpLab,
    uplink: usize,
    devs: &[&str],
) {
    let back = Instant::now();
    lab.set_carrier(uplink, true);
    wait_symmetric(lab, devs, Duration::from_secs(30));
    eprintln!(
        "{test}: symmetric {:?} after the carrier of eth{uplink} returned; events: {:?}",
        back.elapsed(),
        daemon.dispatched()
    );
}

/// Waits until the table of each of `uplinks` holds symroute's copy of `route` (the start of
/// the line, e.g. `172.17.0.0/16 dev docker0 proto 83`); whether it came.
pub fn wait_copied(host: &Netns, uplinks: &[&str], route: &str, timeout: Duration) -> bool {
    let tables: Vec<String> = uplinks
        .iter()
        .map(|dev| crate::table_of(host, dev))
        .collect();
    wait_until(timeout, || {
        tables
            .iter()
            .all(|t| host.routes(t, false).iter().any(|r| r.starts_with(route)))
    })
}

/// Whether `dev` has global IPv4 addresses and none of `before`: a new lease.
pub fn has_new_lease(host: &Netns, dev: &str, before: &[String]) -> bool {
    let now = global_addrs(host, dev, false);
    !now.is_empty() && now.iter().all(|a| !before.contains(a))
}

/// A Docker bridge `docker0` with a container comes up on the host, created by nobody the
/// daemon knows of: waits until `daemon` dispatched `event` for it (`docker0 up`,
/// `docker0 routable`) and the hook run on it copied the bridge's routes into the table of
/// each of `uplinks`, and checks that the container reaches every uplink's IPv4 address.
pub fn docker0_is_copied_on(daemon: &impl Dispatcher, host: &Netns, uplinks: &[&str], event: &str) {
    let container = crate::hosts::bridge_with_container(host, "docker0", "172.17", "17");
    let copied = wait_copied(
        host,
        uplinks,
        "172.17.0.0/16 dev docker0 proto 83",
        Duration::from_secs(30),
    );
    let docker0_events = || -> Vec<String> {
        daemon
            .dispatched()
            .into_iter()
            .filter(|e| e.starts_with("docker0 "))
            .collect()
    };
    wait_until(Duration::from_secs(10), || {
        docker0_events().iter().any(|e| e == event)
    });
    let events = docker0_events();
    eprintln!("docker0 events {events:?}");
    assert!(
        copied,
        "bridge not copied; docker0 events {events:?}\n{}",
        routing_state(host)
    );
    assert!(events.iter().any(|e| e == event), "{events:?}");
    for dev in uplinks {
        for a in global_addrs(host, dev, false) {
            assert!(ping(&container, &a), "container does not reach {a}");
        }
    }
}
