//! The operator at a lab's host: `symroute --config FILE ...` run inside the host's
//! namespace (with a /run of its own), the configuration a file of the test's own that it
//! rewrites between steps, and what each run printed.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use symroute_testlab::daemons::{write_file, TempDir};
use symroute_testlab::Netns;

pub const BIN: &str = env!("CARGO_BIN_EXE_symroute");

/// The uid the read-only commands are tried as.
pub const NOBODY: u32 = 65534;

/// What one `symroute` run left: its exit code and what it printed.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code(),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `symroute` as the operator runs it on `host`, with a configuration file of its own.
pub struct Admin<'a> {
    host: &'a Netns,
    dir: TempDir,
}

impl<'a> Admin<'a> {
    /// An operator on `host` whose configuration file holds `config`.
    pub fn new(host: &'a Netns, config: &str) -> Admin<'a> {
        let admin = Admin {
            host,
            dir: TempDir::new("config"),
        };
        admin.configure(config);
        admin
    }

    /// The configuration file, for runs the test composes itself.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("symroute.toml")
    }

    /// The operator edits the configuration: `text` replaces the file.
    pub fn configure(&self, text: &str) {
        write_file(&self.config(), text, 0o644);
    }

    /// `symroute --config FILE ARGS` on the host, logging to stderr, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_as(None, args)
    }

    /// Like [`Admin::run`], as uid/gid `user` when given (via setpriv, all capabilities
    /// dropped).
    pub fn run_as(&self, user: Option<u32>, args: &[&str]) -> Ran {
        let mut cmd = self.host.private_run::<&str>(&[]);
        let id;
        if let Some(uid) = user {
            id = uid.to_string();
            cmd.args(["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups"]);
            cmd.args(["--inh-caps=-all", "--bounding-set=-all"]);
        }
        cmd.arg(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("SYMROUTE_LOG", "stderr")
            .output()
            .expect("run ip netns exec symroute")
            .into()
    }

    /// [`Admin::run`] that must exit with `code`.
    #[track_caller]
    pub fn exits(&self, code: i32, args: &[&str]) -> Ran {
        let ran = self.run(args);
        assert_eq!(ran.code, Some(code), "symroute {args:?}: {ran:?}");
        ran
    }

    /// [`Admin::run`] that must succeed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Ran {
        self.exits(0, args)
    }

    /// `symroute ARGS` that must succeed and print JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).out;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("symroute {args:?}: {e}: {out}"))
    }

    /// `symroute sync`, which must succeed; its log is on `err`.
    #[track_caller]
    pub fn sync(&self) -> Ran {
        self.ok(&["sync"])
    }

    /// What `symroute plan` would change, a line each.
    #[track_caller]
    pub fn plan(&self) -> String {
        self.ok(&["plan"]).out
    }

    /// `symroute status --json`.
    #[track_caller]
    pub fn status(&self) -> Value {
        self.json(&["status", "--json"])
    }

    /// `symroute explain ARGS --json`.
    #[track_caller]
    pub fn explain(&self, args: &[&str]) -> Value {
        let mut argv = vec!["explain"];
        argv.extend_from_slice(args);
        argv.push("--json");
        self.json(&argv)
    }

    /// `symroute doctor --json`, which exits 1 when it finds a problem.
    #[track_caller]
    pub fn doctor(&self) -> Value {
        let ran = self.run(&["doctor", "--json"]);
        assert!(matches!(ran.code, Some(0 | 1)), "doctor: {ran:?}");
        serde_json::from_str(&ran.out).unwrap_or_else(|e| panic!("doctor JSON: {e}: {ran:?}"))
    }
}

/// The findings of one doctor `check`.
pub fn findings(doctor: &Value, check: &str) -> Vec<Value> {
    doctor["findings"]
        .as_array()
        .map(|f| f.iter().filter(|x| x["check"] == check).cloned().collect())
        .unwrap_or_default()
}

/// Panics with the whole of `text` unless it contains `part`.
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not in:\n{text}");
}
