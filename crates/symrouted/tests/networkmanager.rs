//! `symrouted` with NetworkManager on D-Bus: a stand-in NetworkManager on a private bus that
//! sends garbage, and the real NetworkManager with DHCP from dnsmasq, where the daemon alone
//! (no dispatcher script) keeps both uplinks symmetric, also when a DHCP renewal changes the
//! address and NetworkManager 1.42 dispatches nothing.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::channel::mpsc;
use futures::StreamExt;
use symroute_testlab::daemons::{
    global_addrs, require_programs, routing_state, stale_rules, symroute_rules, wait_symmetric,
    TempDir, POOL_R2_NEXT,
};
use symroute_testlab::{ping, require_root, wait_until, Lab};
use zbus::zvariant::OwnedObjectPath;

const NM: &str = "org.freedesktop.NetworkManager";
const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
const DEVICE_PATH: &str = "/org/freedesktop/NetworkManager/Devices/7";

/// A private message bus, stopped on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start(dir: &Path) -> Bus {
        let socket = dir.join("bus");
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig>\n  <type>symroute-test</type>\n  <listen>unix:path={}</listen>\n  \
                 <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
                 <allow user=\"*\"/>\n    <allow own=\"*\"/>\n    \
                 <allow send_destination=\"*\"/>\n    <allow receive_sender=\"*\"/>\n  \
                 </policy>\n</busconfig>\n",
                socket.display()
            ),
        )
        .expect("bus config");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        assert!(
            wait_until(Duration::from_secs(10), || socket.exists()),
            "private bus did not start"
        );
        Bus {
            child,
            address: format!("unix:path={}", socket.display()),
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct FakeManager;

#[zbus::interface(name = "org.freedesktop.NetworkManager")]
impl FakeManager {
    fn get_all_devices(&self) -> Vec<OwnedObjectPath> {
        vec![OwnedObjectPath::try_from(DEVICE_PATH).expect("path")]
    }
}

struct FakeDevice;

#[zbus::interface(name = "org.freedesktop.NetworkManager.Device")]
impl FakeDevice {
    #[zbus(property)]
    fn interface(&self) -> String {
        "eth1".into()
    }

    #[zbus(property)]
    fn ip_interface(&self) -> String {
        "eth1".into()
    }
}

/// What the stand-in NetworkManager is told to send.
enum Send {
    Garbage,
    StateChanged,
    /// That many state changes, as fast as the bus takes them.
    Flood(usize),
    Leave,
}

/// A stand-in NetworkManager owning its bus name on `address`, serving one device (eth1),
/// on a thread of its own. Returns the channel that tells it what to send.
fn fake_networkmanager(address: String) -> mpsc::UnboundedSender<Send> {
    let (tx, mut rx) = mpsc::unbounded();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .and_then(|b| b.name(NM))
                .and_then(|b| b.serve_at(NM_PATH, FakeManager))
                .and_then(|b| b.serve_at(DEVICE_PATH, FakeDevice))
                .expect("fake NetworkManager")
                .build()
                .await
                .expect("fake NetworkManager on the bus");
            let _ = ready_tx.send(());
            while let Some(what) = rx.next().await {
                let result = match what {
                    Send::Garbage => {
                        let a = conn
                            .emit_signal(None::<()>, DEVICE_PATH, DEVICE, "StateChanged", &("up",))
                            .await;
                        let b = conn
                            .emit_signal(
                                None::<()>,
                                DEVICE_PATH,
                                "org.freedesktop.DBus.Properties",
                                "PropertiesChanged",
                                &(42u8,),
                            )
                            .await;
                        let c = conn
                            .emit_signal(None::<()>, NM_PATH, NM, "DeviceAdded", &("x", 1u32))
                            .await;
                        a.and(b).and(c)
                    }
                    Send::StateChanged => {
                        conn.emit_signal(
                            None::<()>,
                            DEVICE_PATH,
                            DEVICE,
                            "StateChanged",
                            &(100u32, 70u32, 0u32),
                        )
                        .await
                    }
                    Send::Flood(n) => {
                        let mut result = Ok(());
                        for _ in 0..n {
                            result = conn
                                .emit_signal(
                                    None::<()>,
                                    DEVICE_PATH,
                                    DEVICE,
                                    "StateChanged",
                                    &(100u32, 70u32, 0u32),
                                )
                                .await;
                            if result.is_err() {
                                break;
                            }
                        }
                        result
                    }
                    Send::Leave => break,
                };
                result.expect("emit signal");
            }
            drop(conn);
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("fake NetworkManager ready");
    tx
}

#[test]
fn garbage_from_dbus_is_one_log_line_and_real_signals_sync_the_device() {
    let test = "garbage_from_dbus_is_one_log_line_and_real_signals_sync_the_device";
    if !require_root(test) || !require_programs(test, &["dbus-daemon"]) {
        return;
    }
    let lab = Lab::two_uplinks();
    let dir = TempDir::new("symrouted-bus");
    let bus = Bus::start(dir.path());
    let nm = fake_networkmanager(bus.address.clone());
    let mut daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "nm"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    // The line may still be on its way through the log pipe when readiness is reported.
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log()
            .contains("NetworkManager manages [\"eth1\"]")),
        "{}",
        daemon.log()
    );

    nm.unbounded_send(Send::Garbage).expect("fake NM");
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .lines()
            .iter()
            .filter(|l| l.contains("ignoring malformed D-Bus signal"))
            .count()
            == 3),
        "{}",
        daemon.log()
    );
    for line in daemon.lines().iter().filter(|l| l.contains("malformed")) {
        assert!(line.starts_with("warning: ignoring malformed D-Bus signal org.freedesktop."));
    }
    daemon.assert_running();

    // A real signal: the daemon looks eth1 up by its device path and syncs it.
    nm.unbounded_send(Send::StateChanged).expect("fake NM");
    assert!(
        daemon.wait_log("names: {\"eth1\"}", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );

    // NetworkManager leaves the bus: the daemon goes on with the kernel alone.
    nm.unbounded_send(Send::Leave).expect("fake NM");
    assert!(
        daemon.wait_log("NetworkManager left the bus", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    let t1 = table_of(&lab.host, "eth1");
    lab.host
        .ip("route add 203.0.113.0/24 via 10.2.0.1 dev eth1");
    assert!(wait_until(Duration::from_secs(10), || destinations(
        &lab.host, &t1, false
    )
    .contains("203.0.113.0/24")));
    assert!(daemon.terminate().success());
    drop(bus);
}

/// NetworkManager itself floods the bus (5000 state changes of eth1): the daemon handles at
/// most 65 D-Bus messages per turn of its loop (one that woke it, 64 drained), syncing eth1 once
/// per turn, and a kernel change made during the flood is followed.
#[test]
fn a_flood_of_signals_is_handled_in_bounded_batches_between_kernel_events() {
    let test = "a_flood_of_signals_is_handled_in_bounded_batches_between_kernel_events";
    if !require_root(test) || !require_programs(test, &["dbus-daemon"]) {
        return;
    }
    let lab = Lab::two_uplinks();
    let dir = TempDir::new("symrouted-bus");
    let bus = Bus::start(dir.path());
    let nm = fake_networkmanager(bus.address.clone());
    let mut daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "nm"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    assert!(
        daemon.wait_log("NetworkManager manages [\"eth1\"]", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    let flood = 5000;
    nm.unbounded_send(Send::Flood(flood)).expect("fake NM");
    let t1 = table_of(&lab.host, "eth1");
    lab.host
        .ip("route add 203.0.113.0/24 via 10.2.0.1 dev eth1");
    assert!(
        wait_until(Duration::from_secs(20), || destinations(
            &lab.host, &t1, false
        )
        .contains("203.0.113.0/24")),
        "{}",
        daemon.log()
    );
    let handled = |daemon: &Symrouted| {
        daemon
            .lines()
            .iter()
            .filter(|l| l.starts_with("NetworkManager: Device"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(60), || handled(&daemon) >= flood),
        "{} of {flood} handled",
        handled(&daemon)
    );
    // Between two runs (each logs its `dirty:` line first) at most one wake-up and a drain.
    let mut batch = 0;
    let mut largest = 0;
    for line in daemon.lines() {
        if line.starts_with("NetworkManager: ") {
            batch += 1;
            largest = largest.max(batch);
        } else if line.starts_with("dirty: ") {
            batch = 0;
        }
    }
    eprintln!("{test}: largest batch {largest} messages");
    assert!(
        largest <= 65,
        "{largest} D-Bus messages in one turn of the loop"
    );
    daemon.assert_running();
    assert!(daemon.terminate().success());
    drop(bus);
}

#[test]
fn networkmanager_without_nm_on_the_bus_fails_with_source_nm() {
    let test = "networkmanager_without_nm_on_the_bus_fails_with_source_nm";
    if !require_root(test) || !require_programs(test, &["dbus-daemon"]) {
        return;
    }
    let lab = Lab::two_uplinks();
    let dir = TempDir::new("symrouted-bus");
    let bus = Bus::start(dir.path());
    let out = Command::new("ip")
        .args(["netns", "exec", lab.host.name(), DAEMON, "--source", "nm"])
        .args([
            "--lock-file",
            &dir.path().join("lock").display().to_string(),
        ])
        .env("SYMROUTE_LOG", "stderr")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stdin(Stdio::null())
        .output()
        .expect("run symrouted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: NetworkManager is not on the system bus"
    );
}

fn nm_ready(test: &str) -> bool {
    require_root(test)
        && require_programs(
            test,
            &[
                "NetworkManager",
                "nmcli",
                "dbus-daemon",
                "dnsmasq",
                "nsenter",
                "unshare",
                "nft",
                "ping",
            ],
        )
}

const UPLINKS: [&str; 2] = ["eth0", "eth1"];

/// Checks the host after eth1 got `new` instead of `old`: symmetric, the new address
/// answers, no rule for the old one, and NetworkManager's own signals about eth1 reached the
/// daemon (the kernel's address events alone would have been enough).
fn assert_moved(nm_lab: &NmLab, old: &[String], new: &[String]) {
    let lab = &nm_lab.lab;
    assert!(new.len() == 1 && new != old, "{old:?} -> {new:?}");
    assert!(ping(&lab.client, &new[0]));
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    assert_eq!(
        symroute_rules(&lab.host).len(),
        4,
        "{}",
        routing_state(&lab.host)
    );
    assert!(
        nm_lab
            .daemon
            .wait_log("names: {\"eth1\"}", Duration::from_secs(10)),
        "no NetworkManager signal for eth1 reached the daemon:\n{}",
        nm_lab.daemon.log()
    );
}

/// The real NetworkManager (DHCPv4 + SLAAC from dnsmasq), no dispatcher script of
/// symroute's: the daemon alone makes both uplinks symmetric, and after eth1's lease changes
/// address (r2's DHCP server moved to another pool, eth1 reactivated) the new address
/// answers.
#[test]
fn networkmanager_uplinks_are_symmetric_with_the_daemon_alone() {
    let test = "networkmanager_uplinks_are_symmetric_with_the_daemon_alone";
    if !nm_ready(test) {
        return;
    }
    let mut nm_lab = nm_lab(test, &UPLINKS);
    let old = global_addrs(&nm_lab.lab.host, "eth1", false);
    nm_lab.lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    let t = Instant::now();
    nm_lab.nm.nmcli_ok(&["device", "down", "eth1"]);
    nm_lab.nm.nmcli_ok(&["device", "up", "eth1"]);
    let host = &nm_lab.lab.host;
    let renewed = wait_until(Duration::from_secs(30), || {
        let now = global_addrs(host, "eth1", false);
        now.len() == 1 && now != old
    });
    assert!(renewed, "no new lease:\n{}", routing_state(host));
    wait_symmetric(&nm_lab.lab, &UPLINKS, Duration::from_secs(10));
    let new = global_addrs(host, "eth1", false);
    eprintln!(
        "{test}: {old:?} -> {new:?} by reactivation, symmetric after {:?}",
        t.elapsed()
    );
    assert_moved(&nm_lab, &old, &new);
    assert!(nm_lab.daemon.terminate().success());
}

/// The case hooks cannot see: r2's DHCP server moves to another pool and eth1's lease is
/// refused at renewal and rebound to a new address, which NetworkManager 1.42 dispatches to
/// no script. With dnsmasq's 2-minute leases the rebind comes about 105 s after the lease,
/// so this runs only with SYMROUTE_SLOW_TESTS=1.
#[test]
fn networkmanager_dhcp_rebind_to_a_new_address_is_followed_without_any_hook() {
    let test = "networkmanager_dhcp_rebind_to_a_new_address_is_followed_without_any_hook";
    if std::env::var_os("SYMROUTE_SLOW_TESTS").is_none() {
        eprintln!("SKIPPED {test}: takes about two minutes; set SYMROUTE_SLOW_TESTS=1");
        return;
    }
    if !nm_ready(test) {
        return;
    }
    let mut nm_lab = nm_lab(test, &UPLINKS);
    let old = global_addrs(&nm_lab.lab.host, "eth1", false);
    let events_before = nm_lab.nm.events().len();
    nm_lab.lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    let t = Instant::now();
    let host = &nm_lab.lab.host;
    let renewed = wait_until(Duration::from_secs(150), || {
        let now = global_addrs(host, "eth1", false);
        now.len() == 1 && now != old
    });
    assert!(renewed, "no new lease:\n{}", routing_state(host));
    wait_symmetric(&nm_lab.lab, &UPLINKS, Duration::from_secs(10));
    let new = global_addrs(host, "eth1", false);
    eprintln!(
        "{test}: {old:?} -> {new:?} at rebind, symmetric {:?} after the pool moved; \
         dispatcher events meanwhile: {:?}",
        t.elapsed(),
        &nm_lab.nm.events()[events_before..]
    );
    assert_moved(&nm_lab, &old, &new);
    assert!(nm_lab.daemon.terminate().success());
}
