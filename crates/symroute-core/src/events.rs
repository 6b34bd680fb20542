//! The event vocabulary: what NetworkManager, networkd-dispatcher and admins say, mapped onto
//! the things symroute can do about an interface.
//!
//! Events are only nudges: the kernel is the state. A `down`-class event (`down`, `pre-down`,
//! `no-carrier`, `off`, ...) therefore does not remove anything by itself; it brings the
//! interface in line with what the kernel still shows ([`Action::Settle`]), exactly what the
//! daemon does for the same kernel change, so hook and daemon cannot disagree. See
//! docs/design.md, "Events".

/// What to do about an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Rebuild its table and rules from the kernel's current state.
    Sync,
    /// A `down`-class event: the same as [`Action::Sync`] while the kernel still shows the
    /// interface (what the kernel says is gone — addresses, routes flushed by admin-down —
    /// goes; what it still shows stays), and for an interface that no longer exists, collect
    /// whatever of it is left instead of failing.
    Settle,
    /// Remove its rules and table whatever the kernel shows (an admin's explicit request:
    /// `remove`, `symroute flush IFACE`), and collect anything stale.
    Remove,
    /// Nothing to do; exit 0.
    Ignore,
}

/// Maps an event name to an action. Unknown names are ignored: NetworkManager adds events
/// over time and a dispatcher script must not fail on them.
pub fn action_for(event: &str) -> Action {
    match event {
        // NetworkManager dispatcher actions.
        "up" | "dhcp4-change" | "dhcp6-change" | "reapply" | "vpn-up" => Action::Sync,
        "down" | "pre-down" | "vpn-down" | "vpn-pre-down" => Action::Settle,
        // networkd-dispatcher operational states.
        "routable" | "configured" | "degraded" => Action::Sync,
        "off" | "no-carrier" => Action::Settle,
        // Manual use.
        "sync" => Action::Sync,
        "remove" => Action::Remove,
        _ => Action::Ignore,
    }
}

/// The event names symroute acts on, in the order `--help` lists them.
pub const ACTIONS: &[&str] = &[
    "up",
    "dhcp4-change",
    "dhcp6-change",
    "reapply",
    "vpn-up",
    "routable",
    "configured",
    "degraded",
    "sync",
    "down",
    "pre-down",
    "vpn-down",
    "vpn-pre-down",
    "off",
    "no-carrier",
    "remove",
];

/// Events NetworkManager and networkd-dispatcher send that need nothing from symroute: not
/// typos. (Names added later by either are ignored just the same, and quietly for them.)
const IGNORED_EVENTS: &[&str] = &[
    // NetworkManager.
    "pre-up",
    "vpn-pre-up",
    "hostname",
    "connectivity-change",
    // networkd-dispatcher's other operational and administrative states.
    "carrier",
    "dormant",
    "degraded-carrier",
    "enslaved",
    "configuring",
    "unmanaged",
    "failed",
    "initialized",
    "pending",
    "linger",
];

/// Whether `event` is a name some dispatcher sends (acted on or not), rather than likely a
/// typo of a person's (`upp`).
pub fn is_known_event(event: &str) -> bool {
    ACTIONS.contains(&event) || IGNORED_EVENTS.contains(&event)
}

/// Why an interface name is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name {0:?} is longer than 15 bytes")]
    TooLong(String),
    #[error("interface name {0:?} contains '/', whitespace or a control character")]
    BadCharacter(String),
    #[error("interface name {0:?} is not valid")]
    Reserved(String),
}

/// Checks a name the way the kernel's `dev_valid_name` does.
pub fn validate_interface_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 15 {
        return Err(NameError::TooLong(name.to_string()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved(name.to_string()));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(NameError::BadCharacter(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_action_is_acted_on_and_typos_are_unknown() {
        for action in ACTIONS {
            assert_ne!(action_for(action), Action::Ignore, "{action}");
            assert!(is_known_event(action));
        }
        for ignored in IGNORED_EVENTS {
            assert_eq!(action_for(ignored), Action::Ignore, "{ignored}");
        }
        assert!(is_known_event("hostname"));
        assert!(!is_known_event("upp"));
    }

    #[test]
    fn networkmanager_actions() {
        for e in ["up", "dhcp4-change", "dhcp6-change", "reapply", "vpn-up"] {
            assert_eq!(action_for(e), Action::Sync, "{e}");
        }
        for e in ["down", "pre-down", "vpn-down", "vpn-pre-down"] {
            assert_eq!(action_for(e), Action::Settle, "{e}");
        }
        assert_eq!(action_for("remove"), Action::Remove);
        for e in [
            "hostname",
            "connectivity-change",
            "dns-change",
            "pre-up",
            "",
            "surprise",
        ] {
            assert_eq!(action_for(e), Action::Ignore, "{e}");
        }
    }

    #[test]
    fn networkd_dispatcher_states() {
        for e in ["routable", "configured", "degraded"] {
            assert_eq!(action_for(e), Action::Sync, "{e}");
        }
        for e in ["off", "no-carrier"] {
            assert_eq!(action_for(e), Action::Settle, "{e}");
        }
        for e in ["carrier", "dormant", "configuring"] {
            assert_eq!(action_for(e), Action::Ignore, "{e}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(validate_interface_name("eth0").is_ok());
        assert!(validate_interface_name("enp0s31f6.100").is_ok());
        assert!(validate_interface_name("fifteen-chars15").is_ok());
        assert_eq!(validate_interface_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_interface_name("sixteen-chars-16"),
            Err(NameError::TooLong(_))
        ));
        for bad in ["a/b", "a b", "a\tb"] {
            assert!(
                matches!(
                    validate_interface_name(bad),
                    Err(NameError::BadCharacter(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_interface_name(".."),
            Err(NameError::Reserved(_))
        ));
    }
}
