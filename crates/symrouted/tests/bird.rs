//! BIRD 2 on a two-uplink host that `symrouted` keeps symmetric: r2 announces 10 000 /32s
//! over eBGP on eth1, the host's BIRD writes them into main (`proto bird`), and the daemon
//! has to mirror every one of them into eth1's table exactly, and follow when r2 withdraws
//! them all and announces them again.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{assert_no_stale_rules, wait_answered, Bird, ANNOUNCED};
use symroute_testlab::hosts::{Service, SERVICE_PORT, SERVICE_TAG};
use symroute_testlab::{root_lab_with, Lab, Netns, HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6};

const ROUTES: usize = 10_000;
/// Generous for 10 000 routes on a loaded 2-core machine (BIRD alone needs about a second
/// to install them here); what the whole thing takes is logged.
const CONVERGE: Duration = Duration::from_secs(60);

/// The IPv4 routes through eth1 in main and in eth1's table, each without its `proto` (BIRD's
/// in main, symroute's in the copy) and `table`: the two sets must be equal.
fn eth1_routes(host: &Netns) -> (BTreeSet<String>, BTreeSet<String>) {
    let normalize = |line: &str| -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut kept = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if matches!(words[i], "proto" | "table") {
                i += 2;
                continue;
            }
            kept.push(words[i]);
            i += 1;
        }
        kept.join(" ")
    };
    let main = host
        .routes("main", false)
        .into_iter()
        .filter(|r| r.contains(" dev eth1"))
        .map(|r| normalize(&r))
        .collect();
    let copy = host
        .routes(&table_of(host, "eth1"), false)
        .iter()
        .map(|r| normalize(r))
        .collect();
    (main, copy)
}

/// How many of BIRD's routes main holds.
fn bird_routes(host: &Netns) -> usize {
    host.routes("main", false)
        .iter()
        .filter(|r| r.contains(" proto bird"))
        .count()
}

/// Waits until main holds `count` of BIRD's routes and eth1's table mirrors main exactly;
/// panics with the difference after [`CONVERGE`]. Returns how long it took.
fn converge(host: &Netns, count: usize, what: &str) -> Duration {
    let started = Instant::now();
    let done = symroute_testlab::wait_until(CONVERGE, || {
        if bird_routes(host) != count {
            return false;
        }
        let (main, copy) = eth1_routes(host);
        main == copy
    });
    if !done {
        let (main, copy) = eth1_routes(host);
        let missing: Vec<_> = main.difference(&copy).take(5).collect();
        let extra: Vec<_> = copy.difference(&main).take(5).collect();
        panic!(
            "{what}: not mirrored after {CONVERGE:?}: {} BIRD routes in main (want {count}), \
             {} routes through eth1 in main, {} in its table; missing {missing:?}, extra {extra:?}",
            bird_routes(host),
            main.len(),
            copy.len()
        );
    }
    started.elapsed()
}

fn assert_uplinks_answer(lab: &Lab, when: &str) {
    wait_answered(
        &lab.client,
        &lab.host,
        &[HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6],
        Duration::from_secs(10),
        when,
    );
}

#[test]
fn daemon_mirrors_ten_thousand_bgp_routes_through_withdraw_and_reannounce() {
    let Some(lab) = root_lab_with(&["bird", "birdc", "ping", "nft"]) else {
        return;
    };
    let host = &lab.host;
    let _service = Service::start(host, SERVICE_PORT, SERVICE_TAG);
    let mut daemon = Symrouted::start(host, &["--source", "netlink"]);

    let started = Instant::now();
    let router = Bird::router_announcing(&lab.r2, "10.2.0.1", "10.2.0.2", ROUTES as u32);
    let bird = Bird::host_importing(host, "10.2.0.2", "10.2.0.1");
    converge(host, ROUTES, "announced");
    eprintln!(
        "{ROUTES} routes learned and mirrored {:?} after BIRD's start; daemon RSS {} KiB",
        started.elapsed(),
        daemon.rss_kib()
    );
    assert_uplinks_answer(&lab, "with the BGP routes");

    for cycle in 1..=2 {
        router.disable(ANNOUNCED);
        let took = converge(host, 0, "withdrawn");
        eprintln!("withdrawal {cycle} mirrored in {took:?}");
        router.enable(ANNOUNCED);
        let took = converge(host, ROUTES, "announced again");
        eprintln!("re-announcement {cycle} mirrored in {took:?}");
    }
    assert_uplinks_answer(&lab, "after the re-announcement");

    // The host's BIRD stops and takes its routes out of main: so do the copies.
    drop(bird);
    converge(host, 0, "after BIRD stopped");
    assert_no_stale_rules(host);
    daemon.assert_running();
    assert!(daemon.terminate().success());
}
