//! `lookup` against the real kernel, beside `ip route get` asking the same: output lookups
//! from an address, bound to an interface (`oif`) or carrying a mark, and input lookups of
//! a packet entering an interface (`iif`).

use symroute_core::model::{Answer, Query};
use symroute_core::{lookup, Netlink};
use symroute_testlab::hosts::in_netns;
use symroute_testlab::{require_root, Netns};

/// `lookup` run on a thread inside `ns`.
fn answered(ns: &Netns, query: Query, iif: Option<u32>, oif: Option<u32>) -> Answer {
    in_netns(ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let nl = Netlink::connect().expect("connect");
            lookup(&nl, &query, iif, oif).await.expect("lookup")
        })
    })
    .join()
    .expect("lookup thread")
}

fn query(from: &str, to: &str, mark: u32) -> Query {
    Query {
        from: from.parse().expect("from"),
        to: to.parse().expect("to"),
        iif: None,
        mark,
    }
}

/// `(table, oif, gateway, matched entry's prefix)` of a route answer.
fn parts(answer: &Answer) -> (u32, Option<u32>, Option<String>, Option<String>) {
    match answer {
        Answer::Route {
            table,
            oif,
            gateway,
            matched,
            ..
        } => (
            *table,
            *oif,
            gateway.map(|g| g.to_string()),
            matched.as_ref().map(|r| format!("{}/{}", r.dst, r.dst_len)),
        ),
        Answer::Failed { errno } => panic!("lookup failed: errno {errno}"),
    }
}

#[test]
fn lookups_answer_as_ip_route_get_does() {
    if !require_root("lookups_answer_as_ip_route_get_does") {
        return;
    }
    let ns = Netns::new("lku");
    for (dev, n) in [("eth0", 1), ("eth1", 2)] {
        ns.ip(&format!("link add {dev} type veth peer name p{n}"));
        ns.ip(&format!("link set {dev} up"));
        ns.ip(&format!("link set p{n} up"));
        ns.ip(&format!("addr add 10.{n}.0.2/24 dev {dev}"));
        ns.ip(&format!("addr add fd0{n}::2/64 dev {dev} nodad"));
    }
    ns.ip("route add default via 10.1.0.1 dev eth0");
    ns.ip("-6 route add ::/0 via fd01::1 dev eth0");
    ns.ip("route add default via 10.2.0.1 dev eth1 table 1003");
    ns.ip("-6 route add ::/0 via fd02::1 dev eth1 table 1003");
    ns.ip("rule add fwmark 0x3000000/0xff000000 lookup 1003 priority 31998");
    ns.ip("-6 rule add fwmark 0x3000000/0xff000000 lookup 1003 priority 31998");
    ns.ip("rule add from 10.2.0.2 lookup 1003 priority 32000");
    let eth0 = ns.ifindex("eth0");
    let eth1 = ns.ifindex("eth1");

    // A reply from eth1's address: our rule, its table.
    let got = answered(&ns, query("10.2.0.2", "192.0.2.1", 0), None, None);
    assert!(ns
        .ip("route get 192.0.2.1 from 10.2.0.2")
        .contains("via 10.2.0.1 dev eth1 table 1003"));
    assert_eq!(
        parts(&got),
        (
            1003,
            Some(eth1),
            Some("10.2.0.1".into()),
            Some("0.0.0.0/0".into())
        )
    );

    // eth0's address, marked: the fwmark rule wins (IPv4 and IPv6).
    let got = answered(&ns, query("10.1.0.2", "192.0.2.1", 0x0300_0000), None, None);
    assert!(ns
        .ip("route get 192.0.2.1 from 10.1.0.2 mark 0x3000000")
        .contains("dev eth1 table 1003"));
    assert_eq!(parts(&got).0, 1003);
    let got = answered(
        &ns,
        query("fd01::2", "2001:db8::1", 0x0300_0000),
        None,
        None,
    );
    assert_eq!(parts(&got).0, 1003);
    assert_eq!(parts(&got).1, Some(eth1));
    let got = answered(&ns, query("fd01::2", "2001:db8::1", 0), None, None);
    assert_eq!(parts(&got).1, Some(eth0));

    // Bound to eth1 (SO_BINDTODEVICE): main's default has no way through eth1, so the
    // kernel answers with the device alone.
    let got = answered(&ns, query("10.1.0.2", "10.2.0.9", 0), None, Some(eth1));
    assert!(ns
        .ip("route get 10.2.0.9 from 10.1.0.2 oif eth1")
        .contains("dev eth1"));
    assert_eq!(parts(&got).1, Some(eth1));

    // A packet entering eth1 for the host: local delivery.
    let entering = Query {
        iif: Some("eth1".into()),
        ..query("10.12.0.2", "10.2.0.2", 0)
    };
    let got = answered(&ns, entering, Some(eth1), None);
    assert!(ns
        .ip("route get 10.2.0.2 from 10.12.0.2 iif eth1")
        .starts_with("local 10.2.0.2"));
    assert!(
        matches!(
            got,
            Answer::Route {
                kind: 2,
                table: 255,
                ..
            }
        ),
        "{got:?}"
    );
}
