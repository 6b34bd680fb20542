//! A datagram of the daemon's rtnetlink event socket.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| symroute_core::fuzzing::monitor_datagram(bytes));
