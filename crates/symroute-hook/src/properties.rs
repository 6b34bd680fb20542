//! Property tests for what dispatchers pass the hook: any argv (the interface as $1, the
//! event as $2, options or garbage) is parsed without panicking, and only a valid interface
//! name with a known event becomes a run; everything else is ignored or a usage error.

use clap::Parser;
use proptest::prelude::*;
use symroute_core::{validate_interface_name, Action, Error, Target};

use crate::cli::Args;
use crate::{direct_arguments, target};

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,20}",
        "-{1,2}[a-z-]{0,10}",
        prop::sample::select(vec![
            "up",
            "down",
            "dhcp4-change",
            "pre-down",
            "routable",
            "off",
            "sync",
            "remove",
            "none",
            "",
            "eth1",
            "--all",
            "--flush",
            "-n",
            "--config",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_argv_is_parsed_or_refused_and_only_valid_names_run(
        words in prop::collection::vec(word(), 0..5)
    ) {
        let argv = std::iter::once("symroute-hook".to_string()).chain(words.iter().cloned());
        let Ok(args) = Args::try_parse_from(argv) else {
            return Ok(());
        };
        match target(&args) {
            Ok(Some(Target::Interface { name, action })) => {
                prop_assert!(validate_interface_name(&name).is_ok(), "{name:?}");
                prop_assert!(action != Action::Ignore);
            }
            Ok(Some(Target::All)) => prop_assert!(args.all),
            Ok(Some(Target::Flush)) => prop_assert!(args.flush),
            Ok(None) => {}
            Err(e) => {
                prop_assert!(matches!(e, Error::InvalidName(_)), "{e}");
                prop_assert!(e.is_usage());
                prop_assert!(!e.to_string().contains('\n'));
            }
        }
    }

    #[test]
    fn the_direct_reading_of_iface_action_agrees_with_clap(
        interface in word(),
        action in word(),
    ) {
        let argv = [interface.clone().into(), action.clone().into()];
        let Some(direct) = direct_arguments(&argv) else {
            // Left to clap: an option or a dash-word is in it.
            prop_assert!(interface.starts_with('-') || action.starts_with('-'));
            return Ok(());
        };
        let clap = Args::try_parse_from(["symroute-hook", &interface, &action]);
        let clap = clap.map_err(|e| TestCaseError::fail(format!("clap refused: {e}")))?;
        prop_assert_eq!(&direct.interface, &clap.interface);
        prop_assert_eq!(&direct.action, &clap.action);
        prop_assert!(!clap.all && !clap.flush && !clap.dry_run && clap.common.config.is_none());
    }

    #[test]
    fn an_event_for_a_bad_name_is_a_usage_error_or_ignored(
        name in "\\PC{0,20}",
        event in prop::sample::select(vec!["up", "down", "routable", "hostname", "x"]),
    ) {
        prop_assume!(!name.starts_with('-'));
        let args = Args::try_parse_from(["symroute-hook", &name, event]);
        let Ok(args) = args else {
            return Ok(());
        };
        let bad = validate_interface_name(&name).is_err();
        match target(&args) {
            Ok(Some(_)) => prop_assert!(!bad, "{name:?} {event}"),
            Ok(None) => prop_assert!(event == "hostname" || event == "x"),
            Err(_) => prop_assert!(bad),
        }
    }
}
