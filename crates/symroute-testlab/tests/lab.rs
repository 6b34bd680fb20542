//! The lab itself: it must show the problem symroute solves, for the reason we think, and
//! clean up after itself.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use symroute_testlab::{
    make_strict_router, ping, root_lab, running_as_root, wait_until, Lab, Netns, HOST_ETH0_V4,
    HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
};

fn netns_names() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn names(lab: &Lab) -> Vec<String> {
    [&lab.host, &lab.r1, &lab.r2, &lab.client]
        .iter()
        .map(|n| n.name().to_string())
        .collect()
}

/// Packets the router dropped by reverse-path filtering: IPv4 by `rp_filter`
/// (`TcpExt: IPReversePathFilter` in /proc/net/netstat), IPv6 by the nft rule's counter.
fn rpf_drops(router: &Netns) -> (u64, u64) {
    let netstat = router.sh_ok(&["cat", "/proc/net/netstat"]);
    let mut tcpext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcpext.next().unwrap(), tcpext.next().unwrap());
    let v4 = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "IPReversePathFilter")
        .map(|(_, v)| v.parse().unwrap())
        .expect("IPReversePathFilter in /proc/net/netstat");
    let nft = router.sh_ok(&["nft", "list", "table", "ip6", "rpf"]);
    let v6 = nft
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("rpf counter");
    (v4, v6)
}

/// What symroute would do for eth1, written by hand for one `family` ("" or "-6"): its
/// address's rule into table 1003, and a default route through r2 there.
fn cure_by_hand(host: &Netns, family: &str) {
    let (addr, gateway) = if family.is_empty() {
        (HOST_ETH1_V4, "10.2.0.1")
    } else {
        (HOST_ETH1_V6, "fd02::1")
    };
    host.ip(&format!(
        "{family} rule add from {addr} lookup 1003 priority 32000"
    ));
    host.ip(&format!(
        "{family} route add default via {gateway} dev eth1 table 1003"
    ));
}

#[test]
fn without_policy_routing_second_uplink_is_dead() {
    let start = Instant::now();
    let Some(lab) = root_lab() else { return };
    eprintln!("lab setup took {:?}", start.elapsed());

    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert!(ping(&lab.client, HOST_ETH0_V6));
    assert_eq!(rpf_drops(&lab.r1), (0, 0));
    assert!(!ping(&lab.client, HOST_ETH1_V4), "reply via eth0 passed r1");
    assert!(!ping(&lab.client, HOST_ETH1_V6), "reply via eth0 passed r1");

    // Why: r1 dropped the replies by reverse-path filtering (r2 saw the requests fine)...
    let (v4, v6) = rpf_drops(&lab.r1);
    assert!(v4 > 0 && v6 > 0, "r1 rpf drops v4 {v4} v6 {v6}");
    assert_eq!(rpf_drops(&lab.r2), (0, 0));
    // ...and nothing else: with r1 loose, the asymmetric path works.
    lab.r1.sysctls(&[
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.down0.rp_filter", "0"),
    ]);
    lab.r1.sh_ok(&["nft", "delete", "table", "ip6", "rpf"]);
    assert!(ping(&lab.client, HOST_ETH1_V4), "unreachable with r1 loose");
    assert!(ping(&lab.client, HOST_ETH1_V6), "unreachable with r1 loose");
    make_strict_router(&lab.r1);
    let strict_again = rpf_drops(&lab.r1);

    // The cure, written by hand: the lab is sound when it works.
    cure_by_hand(&lab.host, "");
    cure_by_hand(&lab.host, "-6");
    for addr in Lab::host_addresses() {
        assert!(ping(&lab.client, addr), "{addr} unreachable when cured");
    }
    assert_eq!(
        rpf_drops(&lab.r1),
        strict_again,
        "cured, yet r1 dropped some"
    );
}

#[test]
fn namespaces_are_removed_on_drop() {
    let Some(lab) = root_lab() else { return };
    let mut gone = names(&lab);
    assert!(gone.iter().all(|n| netns_names().contains(n)));
    // A process left running inside must not keep anything alive.
    let mut sleeper = lab.host.spawn(&["sleep", "60"]);
    // `ip netns exec` enters the namespace after the spawn returns: until then the sleeper
    // is neither listed nor killed by the drop.
    let pid = libc::pid_t::try_from(sleeper.id()).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lab.host.pids().contains(&pid)),
        "sleeper {pid} never showed up in {}",
        lab.host.name()
    );
    drop(lab);
    let status = sleeper.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "sleeper: {status}");

    let in_panic = std::sync::Mutex::new(Vec::new());
    let panicked = std::panic::catch_unwind(|| {
        let lab = Lab::two_uplinks();
        *in_panic.lock().unwrap() = names(&lab);
        panic!("deliberate panic: the lab must be removed while unwinding");
    });
    assert!(panicked.is_err());
    gone.extend(in_panic.into_inner().unwrap());
    assert_eq!(gone.len(), 8);

    let left = netns_names();
    for name in &gone {
        assert!(!left.contains(name), "{name} left behind: {left:?}");
    }
}

#[test]
fn two_labs_at_once_are_isolated() {
    if !running_as_root() {
        return;
    }
    let (a, b) = (Lab::two_uplinks(), Lab::two_uplinks());
    let all: Vec<String> = names(&a).into_iter().chain(names(&b)).collect();
    for (i, n) in all.iter().enumerate() {
        assert!(!all[i + 1..].contains(n), "{n} used twice");
    }
    // Same addresses in both: a change in one lab must not show in the other.
    cure_by_hand(&a.host, "");
    assert!(ping(&a.client, HOST_ETH1_V4));
    assert!(ping(&b.client, HOST_ETH0_V4));
    assert!(b.host.routes("1003", false).is_empty());
    assert!(!b.host.rules(false).iter().any(|r| r.contains("1003")));
}

/// What a test runs through `private_run` writes `/run/symroute` of its namespace only: the
/// namespace's own directory, shared by its runs, gone with the namespace. The machine's
/// `/run` is not where it lands (another test binary may create it there meanwhile, so
/// only the file's name is checked).
#[test]
fn private_run_gives_each_namespace_its_own_run_directory() {
    if !running_as_root() {
        return;
    }
    let ns = Netns::new("rundir");
    let other = Netns::new("rundir2");
    let name = format!("probe-{}", ns.name());
    let touch = format!("touch /run/symroute/{name} && stat -c %a /run/symroute");
    let out = ns.private_run(&["sh", "-c", &touch]).output().expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "700");
    let dir = ns.run_dir();
    assert!(dir.join(&name).exists());
    assert!(!std::path::Path::new("/run/symroute").join(&name).exists());
    let seen = ns.sh_ok_private(&["ls", "/run/symroute"]);
    assert_eq!(seen.trim(), name, "a second run shares the directory");
    let elsewhere = other.sh_ok_private(&["ls", "/run/symroute"]);
    assert_eq!(elsewhere.trim(), "", "another namespace has its own");
    drop(ns);
    assert!(!dir.exists(), "{} left behind", dir.display());
}
