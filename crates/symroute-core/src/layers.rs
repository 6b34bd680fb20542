//! (tests only) The layers' imports point one way (docs/architecture.md): `model/` imports
//! no other layer, `kernel/` (the only code that reads or writes the host) imports `model/`
//! but none of the layers that decide or display. A circle would make the host's reading
//! depend on planning and the model on both.

use std::path::Path;

/// Every code line of the `.rs` files below `dir` (comments left out) that names
/// `crate::<layer>`, for each of `layers`, as `file:line: text`.
fn naming(dir: &str, layers: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut found = Vec::new();
    let mut folders = vec![root];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            panic!("cannot list {}", folder.display());
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                panic!("cannot read {}", path.display());
            };
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if layers.iter().any(|l| {
                    code.contains(&format!("crate::{l}::"))
                        || code.contains(&format!("crate::{l};"))
                }) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_kernel_layer_imports_no_layer_that_decides_or_displays() {
    let found = naming(
        "kernel",
        &["plan", "views", "run", "kept", "admin", "error", "health"],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_model_imports_no_other_layer() {
    let found = naming(
        "model",
        &[
            "plan", "views", "run", "kept", "admin", "error", "kernel", "settings", "health",
            "config",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}
