//! /etc/symroute/symroute.toml: parsed and validated, or refused with one line that names the
//! file, a line of it and the key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use symroute_core::config::{parse, ConfigError};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match parse(text, Path::new("symroute.toml")) {
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "a multi-line error: {message:?}");
            assert!(message.starts_with("symroute.toml:"), "{message:?}");
            if let ConfigError::Invalid { line, .. } = &e {
                // An error at the end of a text that ends with a newline is on the empty
                // line after it, as in an editor.
                let lines = text.split('\n').count();
                assert!(
                    *line >= 1 && *line <= lines,
                    "line {line} of {lines}: {message:?}"
                );
            }
        }
    }
});
