//! Property tests for what the daemon reads from the kernel's multicast socket: any bytes
//! are decoded without panicking, and bytes that are not a whole rtnetlink notification
//! (garbage, truncated messages, other message types) mark nothing dirty.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use proptest::prelude::*;
use symroute_core::model::{Route, MAIN_TABLE};
use symroute_core::{route_message, Settings};

use crate::dirty::{note, Dirty, Echoes};
use symroute_core::monitor::{parse_datagram, Received};

/// Decodes `bytes` and notes every message, as the daemon's drain does; returns what is
/// dirty afterwards and how many things were received.
fn decode_and_note(bytes: &[u8], settings: &Settings) -> (Dirty, usize) {
    let mut dirty = Dirty::default();
    let mut echoes = Echoes::default();
    let mut received = 0;
    parse_datagram(bytes, &mut |r| {
        received += 1;
        match r {
            Received::Message {
                flags,
                sender,
                message,
            } => note(&mut dirty, &mut echoes, settings, flags, sender, &message),
            Received::Overrun => dirty.resync = true,
        }
    });
    (dirty, received)
}

fn encode(message: RouteNetlinkMessage) -> Vec<u8> {
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(message),
    );
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    bytes
}

/// Message types that are not rtnetlink notifications: netlink control messages but
/// NLMSG_OVERRUN (4), and types past every RTM_* one.
fn foreign_type() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(vec![0u16, 1, 2, 3, 5, 6, 15]),
        0x100u16..=u16::MAX
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_and_note(&bytes, &Settings::default());
    }

    #[test]
    fn any_payload_after_a_valid_header_decodes_without_panicking(
        kind in 16u16..0x70,
        flags in any::<u16>(),
        sender in any::<u32>(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::with_capacity(16 + payload.len());
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&sender.to_ne_bytes());
        bytes.extend_from_slice(&payload);
        decode_and_note(&bytes, &Settings::default());
    }

    #[test]
    fn messages_of_other_types_mark_nothing(
        kind in foreign_type(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(&payload);
        let (dirty, _) = decode_and_note(&bytes, &Settings::default());
        prop_assert!(dirty.is_empty(), "{dirty:?}");
    }

    #[test]
    fn a_truncated_notification_marks_nothing(cut in 0usize..200, garbage in any::<u8>()) {
        // A route through interface 3 in main: whole, it marks interface 3.
        let route = Route::unicast(MAIN_TABLE, "192.0.2.0".parse().expect("address"), 24)
            .via("10.2.0.1".parse().expect("address"), 3)
            .with_protocol(3);
        let whole = encode(RouteNetlinkMessage::NewRoute(route_message(&route)));
        let (dirty, _) = decode_and_note(&whole, &Settings::default());
        prop_assert!(!dirty.is_empty());
        let cut = cut % whole.len();
        let mut bytes = whole[..cut].to_vec();
        // The length field still claims the whole message.
        bytes.push(garbage);
        prop_assume!(bytes.len() < whole.len());
        let (dirty, received) = decode_and_note(&bytes, &Settings::default());
        prop_assert!(dirty.is_empty(), "{dirty:?}");
        prop_assert_eq!(received, 0);
    }
}
