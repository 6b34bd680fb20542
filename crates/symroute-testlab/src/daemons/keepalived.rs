//! keepalived (VRRP) on a lab's host: one instance on eth1 that is MASTER alone (no peer
//! answers its adverts), so its VIPs come as soon as it starts, and a track file that puts it
//! into FAULT on demand.

use super::*;

/// The VRRP instance of [`Keepalived`]: VIPs on `interface`, or on keepalived's macvlan
/// `vrrp.VRID` over it with `use_vmac`.
pub struct VrrpInstance<'a> {
    pub interface: &'a str,
    pub virtual_router_id: u8,
    /// `virtual_ipaddress` entries (IPv4, the instance's family), as keepalived takes them:
    /// `10.2.0.10/32`.
    pub vips: &'a [&'a str],
    /// `virtual_ipaddress_excluded` entries: the IPv6 VIPs of an IPv4 instance.
    pub excluded: &'a [&'a str],
    pub use_vmac: bool,
    /// A program keepalived runs on every state change (`notify`), with its usual arguments
    /// `INSTANCE NAME STATE PRIORITY`.
    pub notify: Option<&'a Path>,
}

/// The macvlan keepalived creates for `use_vmac` (its default name).
pub fn vmac_name(virtual_router_id: u8) -> String {
    format!("vrrp.{virtual_router_id}")
}

/// keepalived 2.2 running only its VRRP process in a namespace, with the namespace's private
/// `/run` ([`Netns::private_run`]), so that a notify script running `symroute-hook` takes the
/// namespace's lock, not the machine's. Stopped on drop (SIGTERM: it removes its VIPs and
/// notifies `STOP`, as a service stop does).
pub struct Keepalived {
    daemon: Option<Daemon>,
    dir: TempDir,
}

impl Keepalived {
    /// Starts keepalived with `instance` and waits until it is MASTER (its VIPs are on the
    /// interface): VRRPv3 with 100 ms adverts, so that takes well under a second.
    pub fn start(ns: &Netns, instance: &VrrpInstance) -> Keepalived {
        let dir = TempDir::new("keepalived");
        let health = dir.path().join("health");
        write_file(&health, "0\n", 0o644);
        let conf = dir.path().join("keepalived.conf");
        write_file(&conf, &config(instance, &health), 0o644);
        let log = dir.path().join("keepalived.log");
        let mut cmd = ns.private_run(&[program("keepalived").as_os_str()]);
        // -n: stay in the foreground; -l -D: log with details to the console (the log file);
        // its own pid files, not the machine's /run/keepalived.pid.
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.path().join("keepalived.pid"))
            .arg("-r")
            .arg(dir.path().join("vrrp.pid"));
        let daemon = Daemon::spawn("keepalived", cmd, &log);
        let mut k = Keepalived {
            daemon: Some(daemon),
            dir,
        };
        k.wait_state("MASTER", 1);
        k
    }

    /// Puts the instance into FAULT (`true`: its tracked file reads non-zero) or lets it
    /// recover (`false`).
    pub fn set_fault(&self, fault: bool) {
        let value = if fault { "1\n" } else { "0\n" };
        write_file(&self.dir.path().join("health"), value, 0o644);
    }

    /// Waits (10 s at most) until keepalived has entered `state` (`MASTER`, `FAULT`,
    /// `BACKUP`) `times` times in all; panics with its log otherwise.
    pub fn wait_state(&mut self, state: &str, times: usize) {
        let needle = format!("Entering {state} STATE");
        let log = self.dir.path().join("keepalived.log");
        let entered = wait_until(Duration::from_secs(10), || {
            read_lossy(&log).matches(&needle).count() >= times
        });
        if let Some(d) = self.daemon.as_mut() {
            d.assert_running();
        }
        assert!(
            entered,
            "keepalived did not enter {state} (x{times}):\n{}",
            tail(&log, 30)
        );
    }

    /// Stops keepalived as a service stop does (SIGTERM) and waits for its exit.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("keepalived.log"))
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- keepalived log, last lines:\n{}",
                tail(&self.dir.path().join("keepalived.log"), 40)
            );
        }
        self.stop();
    }
}

fn config(i: &VrrpInstance, health: &Path) -> String {
    // With use_vmac the VIPs go on the macvlan by themselves; a `dev` would name a link that
    // does not exist yet when the configuration is read.
    let dev = if i.use_vmac {
        String::new()
    } else {
        format!(" dev {}", i.interface)
    };
    let list =
        |vips: &[&str]| -> String { vips.iter().map(|v| format!("    {v}{dev}\n")).collect() };
    let mut text = format!(
        "global_defs {{\n  router_id symroute-test\n  vrrp_version 3\n  script_user root\n  \
         enable_script_security\n}}\n\
         vrrp_track_file health {{\n  file {}\n  weight 0\n}}\n\
         vrrp_instance VI_{id} {{\n  state MASTER\n  interface {ifc}\n  virtual_router_id {id}\n  \
         priority 150\n  advert_int 0.1\n{vmac}  track_file {{\n    health\n  }}\n  \
         virtual_ipaddress {{\n{vips}  }}\n",
        health.display(),
        id = i.virtual_router_id,
        ifc = i.interface,
        vmac = if i.use_vmac { "  use_vmac\n" } else { "" },
        vips = list(i.vips),
    );
    if !i.excluded.is_empty() {
        text += &format!(
            "  virtual_ipaddress_excluded {{\n{}  }}\n",
            list(i.excluded)
        );
    }
    if let Some(notify) = i.notify {
        text += &format!("  notify {}\n", notify.display());
    }
    text + "}\n"
}
