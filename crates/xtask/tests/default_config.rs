//! The shipped /etc/symroute/symroute.toml (packaging/symroute.toml): as shipped it means the
//! defaults, it documents every key the parser knows, and the values it shows are accepted —
//! the last one shown for each key being the true default.

use std::collections::BTreeMap;
use std::path::Path;

use symroute_core::config;
use symroute_core::Settings;

fn shipped() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/symroute.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Settings {
    config::parse(text, Path::new("/etc/symroute/symroute.toml"))
        .unwrap_or_else(|e| panic!("{e}\n--- text ---\n{text}"))
}

/// Every key the parser accepts, read from its own "unknown field" error.
fn known_keys() -> Vec<String> {
    let e = config::parse("no_such_key = 1\n", Path::new("x"))
        .unwrap_err()
        .to_string();
    let list = e.split("expected one of ").nth(1).expect(&e);
    list.split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

/// `(line index, key)` of every commented-out `#key = value` line.
fn commented_settings(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let rest = line.strip_prefix('#')?;
            let (key, _) = rest.split_once(" = ")?;
            let key = key.trim();
            (!key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .then(|| (i, key.to_string()))
        })
        .collect()
}

/// The text with the chosen lines uncommented.
fn uncomment(text: &str, lines: &[usize]) -> String {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if lines.contains(&i) {
                line.trim_start_matches('#').to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn as_shipped_it_is_the_default() {
    assert_eq!(parse(&shipped()), Settings::default());
}

#[test]
fn every_key_is_documented() {
    let text = shipped();
    let documented: Vec<String> = commented_settings(&text)
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let keys = known_keys();
    assert!(keys.len() >= 11, "{keys:?}");
    for key in &keys {
        assert!(
            documented.contains(key),
            "key {key} is not in packaging/symroute.toml"
        );
    }
    for key in &documented {
        assert!(
            keys.contains(key),
            "packaging/symroute.toml shows unknown key {key}"
        );
    }
}

#[test]
fn the_last_value_shown_for_each_key_is_the_default() {
    let text = shipped();
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for (i, key) in commented_settings(&text) {
        last.insert(key, i);
    }
    let lines: Vec<usize> = last.values().copied().collect();
    assert_eq!(parse(&uncomment(&text, &lines)), Settings::default());
}

#[test]
fn the_examples_are_valid() {
    let text = shipped();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for (i, key) in commented_settings(&text) {
        first.entry(key).or_insert(i);
    }
    let lines: Vec<usize> = first.values().copied().collect();
    let settings = parse(&uncomment(&text, &lines));
    assert!(!settings.include.is_empty() && !settings.exclude.is_empty());
    assert!(!settings.exempt.is_empty());
}
