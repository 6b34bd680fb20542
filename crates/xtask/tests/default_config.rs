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

/// The keys `text` (a file with an unknown key) says the parser accepts, from its "unknown
/// field" error.
fn accepted(text: &str) -> Vec<String> {
    let e = config::parse(text, Path::new("x")).unwrap_err().to_string();
    let list = e.split("expected one of ").nth(1).expect(&e);
    list.split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

/// Every key the parser accepts: the top level's, and `[health]`'s as `health.KEY`.
fn known_keys() -> Vec<String> {
    let mut keys = accepted("no_such_key = 1\n");
    keys.extend(
        accepted("[health]\nno_such_key = 1\n")
            .into_iter()
            .map(|k| format!("health.{k}")),
    );
    keys
}

/// `(line index, key)` of every commented-out `#key = value` line; keys of `#[health]` are
/// `health.KEY`, and a `#[section]` header is a line of its own (`health`, `health.weights`).
/// The entries of `[health.weights]` are interface names, not keys.
fn commented_settings(text: &str) -> Vec<(usize, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        if let Some(name) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.to_string();
            found.push((i, section.clone()));
            continue;
        }
        let Some((key, _)) = rest.split_once(" = ") else {
            continue;
        };
        let key = key.trim();
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match section.as_str() {
            "" if plain => found.push((i, key.to_string())),
            "health" if plain => found.push((i, format!("health.{key}"))),
            // Weights: shown as examples; uncommented together with their header.
            "health.weights" => found.push((i, format!("health.weights.{key}"))),
            _ => {}
        }
    }
    found
}

/// Whether `key` belongs to the `[health]` section (off by default: uncommenting any of it
/// turns it on).
fn in_health(key: &str) -> bool {
    key == "health" || key.starts_with("health.")
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
    for key in documented
        .iter()
        .filter(|k| *k != "health.weights" && !k.starts_with("health.weights."))
    {
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
    let lines: Vec<usize> = last
        .iter()
        .filter(|(k, _)| !in_health(k))
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(parse(&uncomment(&text, &lines)), Settings::default());
}

#[test]
fn the_health_section_shown_is_valid_and_its_last_values_are_its_defaults() {
    let text = shipped();
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for (i, key) in commented_settings(&text) {
        last.insert(key, i);
    }
    // The section alone, with only the required targets: every other key at its default.
    let health: Vec<usize> = last
        .iter()
        .filter(|(k, _)| *k == "health" || *k == "health.targets")
        .map(|(_, i)| *i)
        .collect();
    let minimal = parse(&uncomment(&text, &health)).health.expect("[health]");
    let lines: Vec<usize> = last
        .iter()
        .filter(|(k, _)| in_health(k) && !k.starts_with("health.weights"))
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(parse(&uncomment(&text, &lines)).health, Some(minimal));
    // Weights are examples: with them the section is still accepted.
    let all: Vec<usize> = last
        .iter()
        .filter(|(k, _)| in_health(k))
        .map(|(_, i)| *i)
        .collect();
    let weighted = parse(&uncomment(&text, &all)).health.expect("[health]");
    assert_eq!(weighted.weight_of("eth0"), 3);
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
