//! An unprivileged local user against `symroute-hook`: the run lock and the configuration.
//! Every run happens in a private mount namespace with its own tmpfs on /run, so the lock is
//! the real default path (/run/symroute/lock) without touching the machine's /run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Instant;

use symroute_testlab::daemons::{write_file, PrivateMounts, TempDir};
use symroute_testlab::lock::{LockHolder, DEFAULT_LOCK, NOBODY};
use symroute_testlab::{root_lab_with, Lab};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");

fn private_run(lab: &Lab, extra: &str) -> PrivateMounts {
    PrivateMounts::new(
        &lab.host,
        &format!("mount -t tmpfs -o mode=0755 symroute-test /run\n{extra}"),
    )
}

fn hook(mounts: &PrivateMounts, args: &[&str]) -> Output {
    mounts
        .command(Path::new(HOOK))
        .args(args)
        .env("SYMROUTE_LOG", "stderr")
        .stdin(Stdio::null())
        .output()
        .expect("run symroute-hook")
}

/// Like [`hook`], which must succeed; its log.
fn hook_ok(mounts: &PrivateMounts, args: &[&str]) -> String {
    let out = hook(mounts, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "symroute-hook {args:?} failed: {stderr}"
    );
    stderr
}

/// `flock -n LOCK` as nobody, printing whether it got the lock.
fn nobody_can_lock(mounts: &PrivateMounts) -> (bool, String) {
    let mut argv = NOBODY.to_vec();
    argv.extend_from_slice(&["flock", "-n", DEFAULT_LOCK, "echo", "locked"]);
    let out = mounts.run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout.contains("locked"), stderr)
}

/// `stat -c '%a %U %i' PATH` (mode, owner, inode) inside the namespace.
fn mode_owner(mounts: &PrivateMounts, path: &str) -> String {
    mounts
        .run_ok(&["stat", "-c", "%a %U %i", path])
        .trim()
        .to_string()
}

/// Someone holding the lock (through `prefix`) until dropped; returns once the lock is held.
/// The file must exist.
fn holder(mounts: &PrivateMounts, prefix: &[&str]) -> LockHolder {
    LockHolder::start(mounts, prefix).expect("the holder did not get the lock")
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn unprivileged_user_cannot_hold_the_run_lock() {
    let Some(lab) = root_lab_with(&["setpriv", "flock", "stat"]) else {
        return;
    };
    let mounts = private_run(&lab, "");
    let t1 = (1000 + lab.host.ifindex("eth1")).to_string();

    // Before the first run: there is nothing to open, and nobody can create it.
    let (locked, why) = nobody_can_lock(&mounts);
    assert!(!locked, "nobody locked before the first run");
    eprintln!("before the first run, nobody's flock: {}", why.trim());

    hook_ok(&mounts, &["eth1", "up"]);
    assert!(lab.host.rules(false).iter().any(|r| r.contains(&t1)));
    assert!(mode_owner(&mounts, "/run/symroute").starts_with("700 root "));
    assert!(mode_owner(&mounts, "/run/symroute/lock").starts_with("600 root "));

    // After it: not even opened.
    let (locked, why) = nobody_can_lock(&mounts);
    assert!(!locked, "nobody locked after the first run");
    assert!(why.contains("Permission denied"), "{why}");

    // What an older version left (0755 directory, 0644 file), held by nobody: the hook
    // replaces the file and finishes in normal time instead of waiting for nobody.
    mounts.run_ok(&["chmod", "0755", "/run/symroute"]);
    mounts.run_ok(&["chmod", "0644", "/run/symroute/lock"]);
    let before = mode_owner(&mounts, "/run/symroute/lock");
    let _nobody = holder(&mounts, &NOBODY);
    let started = Instant::now();
    let stderr = hook_ok(&mounts, &["eth0", "up"]);
    eprintln!(
        "hook with nobody holding the old lock file: {:?}; {}",
        started.elapsed(),
        stderr.trim()
    );
    assert!(
        stderr.contains("/run/symroute: mode was 0755, set to 0700"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/run/symroute/lock: was mode 0644; replaced"),
        "{stderr}"
    );
    let after = mode_owner(&mounts, "/run/symroute/lock");
    assert!(after.starts_with("600 root "), "{after}");
    assert_ne!(before, after, "the old file (inode) is still in place");
    let (locked, _) = nobody_can_lock(&mounts);
    assert!(!locked);
}

#[test]
fn root_holding_the_lock_delays_the_hook_a_few_seconds_at_most() {
    let Some(lab) = root_lab_with(&["flock"]) else {
        return;
    };
    let mounts = private_run(
        &lab,
        "mkdir -m 0700 /run/symroute\ninstall -m 0600 /dev/null /run/symroute/lock",
    );
    let before = lab.host.rules(false);
    let holder = holder(&mounts, &[]);
    let started = Instant::now();
    let out = hook(&mounts, &["eth1", "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("gave up after {:?}: {}", started.elapsed(), stderr.trim());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // nsenter forks the flock(1) that took the lock: its pid is not the child's.
    let line = stderr.trim();
    assert!(
        line.starts_with("error: cannot lock /run/symroute/lock: still held after 5 s by pid ")
            && line.ends_with(" (flock); giving up")
            && !line.contains('\n'),
        "{line}"
    );
    assert_eq!(
        lab.host.rules(false),
        before,
        "changed something without the lock"
    );
    drop(holder);
    hook_ok(&mounts, &["eth1", "up"]);
}

#[test]
fn group_writable_config_is_refused_and_nothing_changes() {
    let Some(lab) = root_lab_with(&[]) else {
        return;
    };
    let mounts = private_run(&lab, "");
    let dir = TempDir::new("config");
    let config = dir.path().join("symroute.toml");
    write_file(&config, "prefix_rules = true\n", 0o664);
    let cfg = config.display().to_string();
    let before = (lab.host.rules(false), lab.host.rules(true));

    let out = hook(&mounts, &["--config", &cfg, "eth1", "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {cfg}: refused: it is writable by its group (mode 0664); remove that with \
             chmod go-w"
        )
    );
    // The directory too, and a file of someone else's.
    write_file(&config, "prefix_rules = true\n", 0o644);
    set_mode(dir.path(), 0o777);
    let out = hook(&mounts, &["--config", &cfg, "eth1", "up"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("writable by group and others"));
    set_mode(dir.path(), 0o755);
    std::os::unix::fs::chown(&config, Some(65534), None).expect("chown");
    let out = hook(&mounts, &["--config", &cfg, "eth1", "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("it is owned by uid 65534, not by root"),
        "{stderr}"
    );
    // Nothing changed, and the lock was never even created.
    assert_eq!((lab.host.rules(false), lab.host.rules(true)), before);
    assert!(!mounts.path("/run/symroute").exists());

    // Fixed, it is used.
    std::os::unix::fs::chown(&config, Some(0), None).expect("chown");
    hook_ok(&mounts, &["--config", &cfg, "eth1", "up"]);
    assert!(
        lab.host
            .rules(false)
            .iter()
            .any(|r| r.contains("from 10.2.0.0/24")),
        "{:?}",
        lab.host.rules(false)
    );
}

#[test]
fn hanging_nft_is_killed_and_named() {
    // nft is needed only as a mount point for the stand-in.
    let Some(lab) = root_lab_with(&["nft"]) else {
        return;
    };
    let dir = TempDir::new("hangingnft");
    let stand_in = dir.path().join("nft");
    write_file(&stand_in, "#!/bin/sh\nexec sleep 600\n", 0o755);
    let config = dir.path().join("symroute.toml");
    write_file(&config, "iif_rules = true\n", 0o644);
    // /usr/sbin/nft replaced by one that never answers, in this mount namespace only.
    let mounts = private_run(
        &lab,
        &format!("mount --bind {} /usr/sbin/nft", stand_in.display()),
    );
    let started = Instant::now();
    let out = hook(
        &mounts,
        &["--config", &config.display().to_string(), "eth1", "up"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "hook with a hanging nft ended after {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [
            "error: replacing table inet symroute: /usr/sbin/nft -f - failed (timed out): no \
          answer within 10 s; killed"
        ],
        "{stderr}"
    );
    mounts.kill_members();
}
