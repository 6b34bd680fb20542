//! The answer to a route, link, address or rule dump, as the kernel sends it to a run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| symroute_core::fuzzing::dump_answer(bytes));
