//! Batched writes against the real kernel: one result per write, in order, even though only
//! the last write of a batch asks for an acknowledgement.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use symroute_core::model::Route;
use symroute_core::{route_message, Netlink, NetlinkError};
use symroute_testlab::hosts::in_netns;
use symroute_testlab::{require_root, Netns};

fn route(dst: [u8; 3], gateway: &str, ifindex: u32) -> Route {
    let dst = std::net::IpAddr::from([dst[0], dst[1], dst[2], 0]);
    Route::unicast(1042, dst, 24)
        .via(gateway.parse().expect("gateway"), ifindex)
        .with_protocol(83)
}

#[test]
fn every_write_gets_its_own_result_in_order() {
    if !require_root("every_write_gets_its_own_result_in_order") {
        return;
    }
    let ns = Netns::new("nlw");
    ns.ip("link add eth0 type veth peer name peer0");
    ns.ip("link set eth0 up");
    ns.ip("link set peer0 up");
    ns.ip("addr add 10.1.0.2/24 dev eth0");
    let ifindex: u32 = ns
        .ip("-o link show dev eth0")
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("ifindex");

    // 3000 writes span several batches; every 700th has an unreachable gateway.
    let routes: Vec<Route> = (0..3000u32)
        .map(|i| {
            let gw = if i % 700 == 699 {
                "192.0.2.1"
            } else {
                "10.1.0.1"
            };
            route([100, (i / 256) as u8, (i % 256) as u8], gw, ifindex)
        })
        .collect();
    let writes: Vec<(RouteNetlinkMessage, u16)> = routes
        .iter()
        .map(|r| {
            (
                RouteNetlinkMessage::NewRoute(route_message(r)),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
        })
        .collect();
    let results = in_netns(&ns, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let nl = Netlink::connect().expect("connect");
            nl.write_all(writes).await
        })
    })
    .join()
    .expect("netns thread");
    assert_eq!(results.len(), 3000);
    for (i, result) in results.iter().enumerate() {
        if i % 700 == 699 {
            assert_eq!(
                result,
                &Err(NetlinkError::Errno(libc::ENETUNREACH)),
                "write {i}"
            );
        } else {
            assert_eq!(result, &Ok(()), "write {i}");
        }
    }
    assert_eq!(ns.routes("1042", false).len(), 3000 - 4);
}
