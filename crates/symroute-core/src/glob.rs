//! Interface name patterns: what `include`, `exclude` and `[health]`'s per-interface
//! sections match names with. Shared by settings.rs and health/, which import it rather
//! than each other.

/// Shell-style matching with `*` (any run) and `?` (one character), as in `ip link` globs
/// and networkd's `Name=`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    pi = bp + 1;
                    ni = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("eth*", "eth0"));
        assert!(glob_match("eth*", "eth"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("wl?0", "wlp0"));
        assert!(glob_match("*.100", "eth0.100"));
        assert!(glob_match("e*h*1", "eth1"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(!glob_match("docker*", "eth0"));
    }
}
