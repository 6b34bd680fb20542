//! systemd-networkd + networkd-dispatcher with a private D-Bus system bus, in a private mount
//! namespace inside a lab's host namespace.

use super::*;

/// systemd-networkd configuring some links of a host namespace with DHCP (IPv4, route metric
/// 100, 101, ... in order) and router advertisements, plus networkd-dispatcher, with their own
/// D-Bus system bus in a private mount namespace.
///
/// `root` plays the file system root for the integration files an installer put there:
/// `root/etc/networkd-dispatcher` is networkd-dispatcher's script folder, and
/// `root/etc/systemd/networkd.conf.d`, when it exists, holds networkd's drop-ins (mounted on
/// `/run/systemd/networkd.conf.d`). The machine's own networkd configuration
/// (`/etc/systemd/network`, `networkd.conf`, `networkd.conf.d`) is hidden.
///
/// networkd-dispatcher is started with `--run-startup-triggers` (as Debian's unit does) once
/// networkd runs; scripts `00-symroute-test-events` in a second script folder record
/// `IFACE STATE` lines of every state (see [`Networkd::events`]).
pub struct Networkd {
    dispatcher: Option<Daemon>,
    networkd: Option<Daemon>,
    dbus: Option<Daemon>,
    mounts: Option<PrivateMounts>,
    dir: TempDir,
}

/// Every state folder networkd-dispatcher knows.
const NETWORKD_STATES: &[&str] = &[
    "carrier",
    "degraded",
    "degraded-carrier",
    "dormant",
    "enslaved",
    "missing",
    "no-carrier",
    "off",
    "routable",
    "configured",
    "configuring",
    "failed",
    "pending",
    "unmanaged",
    "linger",
    "initialized",
];

impl Networkd {
    pub fn start(host: &Netns, root: &Path, links: &[&str]) -> Networkd {
        let dir = TempDir::new("networkd");
        let network = dir.mkdir("network");
        for (i, dev) in links.iter().enumerate() {
            let metric = 100 + i;
            write_file(
                &network.join(format!("10-symroute-test-{dev}.network")),
                &format!(
                    "[Match]\nName={dev}\n\n\
                     [Network]\nDHCP=ipv4\nIPv6AcceptRA=yes\nLinkLocalAddressing=ipv6\n\n\
                     [DHCPv4]\nRouteMetric={metric}\nUseDNS=no\nUseHostname=no\n\n\
                     [IPv6AcceptRA]\nRouteMetric={metric}\nUseDNS=no\n"
                ),
                0o644,
            );
        }
        let empty = dir.mkdir("empty");
        let empty_file = dir.path().join("empty.conf");
        write_file(&empty_file, "", 0o644);
        let events = dir.path().join("events.log");
        write_file(&events, "", 0o644);
        let record = dir.mkdir("record");
        for state in NETWORKD_STATES {
            write_file(
                &record.join(format!("{state}.d/00-symroute-test-events")),
                &format!(
                    "#!/bin/sh\n# symroute e2e tests: records the event, does nothing else.\n\
                     echo \"$IFACE $STATE\" >> {}\n",
                    quote(&events)
                ),
                0o755,
            );
        }
        let scripts = root.join("etc/networkd-dispatcher");
        let dropins = root.join("etc/systemd/networkd.conf.d");

        let mut setup = format!(
            "{COMMON_SETUP}\
             mkdir -p /run/systemd/network /run/systemd/netif /run/systemd/networkd.conf.d\n\
             chown systemd-network:systemd-network /run/systemd/netif\n\
             mount --bind {net} /run/systemd/network\n\
             for d in /etc/systemd/network /etc/systemd/networkd.conf.d; do\n\
             \x20   if [ -d \"$d\" ]; then mount --bind {empty} \"$d\"; fi\n\
             done\n\
             if [ -f /etc/systemd/networkd.conf ]; then mount --bind {empty_file} /etc/systemd/networkd.conf; fi\n",
            net = quote(&network),
            empty = quote(&empty),
            empty_file = quote(&empty_file),
        );
        if dropins.is_dir() {
            setup.push_str(&format!(
                "mount --bind {} /run/systemd/networkd.conf.d\n",
                quote(&dropins)
            ));
        }
        let mounts = PrivateMounts::new(host, &setup);
        let dbus = start_dbus(&mounts, &dir.path().join("dbus.log"));

        let mut cmd = mounts.command(&program("systemd-networkd"));
        cmd.env("SYSTEMD_LOG_TARGET", "console")
            .env("SYSTEMD_LOG_LEVEL", "debug")
            .env("SYSTEMD_LOG_COLOR", "0");
        let mut networkd = Daemon::spawn("systemd-networkd", cmd, &dir.path().join("networkd.log"));
        // networkd is up once it has taken the links over (they leave "unmanaged").
        let managed = wait_until(Duration::from_secs(15), || {
            let list = mounts.run(&["networkctl", "list", "--no-legend", "--no-pager"]);
            let text = String::from_utf8_lossy(&list.stdout).into_owned();
            links.iter().all(|dev| {
                text.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() >= 5 && f[1] == *dev && !matches!(f[4], "unmanaged" | "pending" | "-")
                })
            })
        });
        networkd.assert_running();
        assert!(
            managed,
            "systemd-networkd did not take {links:?} over:\n{}",
            tail(networkd.log_path(), 40)
        );

        let mut cmd = mounts.command(&program("networkd-dispatcher"));
        cmd.args(["-v", "--run-startup-triggers", "-S"])
            .arg(format!("{}:{}", record.display(), scripts.display()));
        let mut dispatcher = Daemon::spawn(
            "networkd-dispatcher",
            cmd,
            &dir.path().join("networkd-dispatcher.log"),
        );
        let ready = wait_until(Duration::from_secs(15), || {
            dispatcher.log().contains("Startup complete")
        });
        dispatcher.assert_running();
        assert!(
            ready,
            "networkd-dispatcher did not start:\n{}",
            tail(dispatcher.log_path(), 40)
        );
        Networkd {
            dispatcher: Some(dispatcher),
            networkd: Some(networkd),
            dbus: Some(dbus),
            mounts: Some(mounts),
            dir,
        }
    }

    fn mounts(&self) -> &PrivateMounts {
        self.mounts.as_ref().expect("mounts")
    }

    /// A command running `argv` inside networkd's namespaces (its `/run`, its bus), to be
    /// spawned.
    pub fn command(&self, argv: &[&str]) -> Command {
        self.mounts().command_argv(argv)
    }

    pub fn networkctl(&self, args: &[&str]) -> Output {
        self.mounts().run_tool("networkctl", args)
    }

    pub fn networkctl_ok(&self, args: &[&str]) -> String {
        self.mounts().run_tool_ok("networkctl", args)
    }

    /// (operational, setup) state of a link as `networkctl list` shows it.
    pub fn link_state(&self, dev: &str) -> (String, String) {
        let out = self.networkctl(&["list", "--no-legend", "--no-pager"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5 && f[1] == dev).then(|| (f[3].to_string(), f[4].to_string()))
            })
            .unwrap_or_default()
    }

    /// The networkd-dispatcher events so far, `IFACE STATE` per line, oldest first.
    pub fn events(&self) -> Vec<String> {
        crate::lines(&read_lossy(&self.dir.path().join("events.log")))
    }

    /// networkd-dispatcher's log, with the scripts' output (symroute-hook's lines).
    pub fn dispatcher_log(&self) -> String {
        self.dispatcher
            .as_ref()
            .map(Daemon::log)
            .unwrap_or_default()
    }

    pub fn networkd_log(&self) -> String {
        self.networkd.as_ref().map(Daemon::log).unwrap_or_default()
    }
}

impl Drop for Networkd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- networkd-dispatcher events:\n{}\n--- networkd-dispatcher log (with \
                 symroute-hook output), last lines:\n{}\n--- systemd-networkd log, last lines:\n{}",
                self.events().join("\n"),
                tail(&self.dir.path().join("networkd-dispatcher.log"), 60),
                tail(&self.dir.path().join("networkd.log"), 60),
            );
        }
        drop(self.dispatcher.take());
        drop(self.networkd.take());
        if let Some(m) = &self.mounts {
            m.kill_members();
        }
        drop(self.dbus.take());
        drop(self.mounts.take());
    }
}
