//! Whether a file root acts on can be trusted, the way sshd's `StrictModes` decides: the file
//! and every directory above it are owned by root (or by the user running us) and cannot be
//! written by anyone else. Otherwise an unprivileged user could steer what root does.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a trusted file could not be read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// Opening or reading failed (the system's reason).
    Io(String),
    /// The file exists but may not be used; the reason names what is wrong and the fix.
    Refused(String),
}

/// Reads `path` after checking that nobody but root (or us) can have written it; at most
/// `limit` bytes (a larger file is refused, never read whole).
pub fn read_trusted(path: &Path, limit: usize) -> Result<String, ReadError> {
    // O_NONBLOCK: a FIFO in the file's place must not hang the opener (it is refused below).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(io_text(&e)),
        })?;
    let meta = file.metadata().map_err(|e| ReadError::Io(io_text(&e)))?;
    if !meta.file_type().is_file() {
        return Err(ReadError::Refused("not a regular file".into()));
    }
    check_owner_and_mode(&meta, "it").map_err(ReadError::Refused)?;
    for dir in directories_above(path, &file) {
        let meta = std::fs::metadata(&dir).map_err(|e| {
            ReadError::Refused(format!(
                "cannot check directory {}: {}",
                dir.display(),
                io_text(&e)
            ))
        })?;
        check_owner_and_mode(&meta, &format!("directory {}", dir.display()))
            .map_err(ReadError::Refused)?;
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(io_text(&e)))?;
    if bytes.len() > limit {
        return Err(ReadError::Refused(format!(
            "larger than {} KiB; a configuration is never that long",
            limit / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Refused(format!(
            "not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Owned by root or by us, and not writable by group or others. A directory with the sticky
/// bit (like /tmp) may be writable by all: nobody but the owner can replace an entry there.
fn check_owner_and_mode(meta: &Metadata, what: &str) -> Result<(), String> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let uid = meta.uid();
    if uid != 0 && uid != euid {
        let expected = if euid == 0 {
            "root".to_string()
        } else {
            format!("root or uid {euid}")
        };
        return Err(format!("{what} is owned by uid {uid}, not by {expected}"));
    }
    let mode = meta.mode() & 0o7777;
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_dir {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(format!(
            "{what} is writable by {who} (mode {mode:04o}); remove that with chmod go-w"
        ));
    }
    Ok(())
}

/// Every directory above the file: those of the path as given and, when a symlink led
/// elsewhere, those of the file actually opened.
fn directories_above(path: &Path, file: &File) -> Vec<PathBuf> {
    use std::os::fd::AsRawFd;
    let given = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(&given))
        .ok();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in std::iter::once(given).chain(opened) {
        for dir in p.ancestors().skip(1) {
            if !dir.as_os_str().is_empty() && !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    dirs
}

fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("symroute-trust-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refusal(path: &Path) -> String {
        match read_trusted(path, 64 * 1024) {
            Err(ReadError::Refused(reason)) => reason,
            other => panic!("{} was not refused: {other:?}", path.display()),
        }
    }

    #[test]
    fn own_file_in_own_directory_is_read() {
        let dir = temp_dir("ok");
        let file = dir.join("a.toml");
        write(&file, "ipv4 = true\n", 0o644);
        assert_eq!(read_trusted(&file, 100).unwrap(), "ipv4 = true\n");
        assert!(matches!(
            read_trusted(&dir.join("missing"), 100),
            Err(ReadError::NotFound)
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn writable_by_group_or_others_is_refused() {
        let dir = temp_dir("mode");
        let file = dir.join("a.toml");
        write(&file, "", 0o664);
        assert_eq!(
            refusal(&file),
            "it is writable by its group (mode 0664); remove that with chmod go-w"
        );
        write(&file, "", 0o646);
        assert!(refusal(&file).contains("writable by others (mode 0646)"));
        write(&file, "", 0o644);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            refusal(&file),
            format!(
                "directory {} is writable by group and others (mode 0777); remove that with \
                 chmod go-w",
                dir.display()
            )
        );
        // Sticky, like /tmp: others cannot replace the file.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(read_trusted(&file, 100).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn size_is_bounded_and_text_must_be_utf8() {
        let dir = temp_dir("size");
        let file = dir.join("a.toml");
        write(&file, &"#".repeat(2048), 0o644);
        assert!(read_trusted(&file, 2048).is_ok());
        assert_eq!(
            refusal_with(&file, 2047),
            "larger than 1 KiB; a configuration is never that long"
        );
        std::fs::write(&file, b"a = \xff\n").unwrap();
        assert_eq!(refusal(&file), "not UTF-8 text (byte 4)");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn refusal_with(path: &Path, limit: usize) -> String {
        match read_trusted(path, limit) {
            Err(ReadError::Refused(reason)) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn owned_by_someone_else_is_refused() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped owned_by_someone_else_is_refused: needs root for chown");
            return;
        }
        let dir = temp_dir("owner");
        let file = dir.join("a.toml");
        write(&file, "", 0o644);
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        assert_eq!(refusal(&file), "it is owned by uid 65534, not by root");
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        assert_eq!(
            refusal(&file),
            format!(
                "directory {} is owned by uid 65534, not by root",
                dir.display()
            )
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn devices_and_directories_are_not_configuration() {
        assert_eq!(refusal(Path::new("/dev/zero")), "not a regular file");
        assert_eq!(refusal(&std::env::temp_dir()), "not a regular file");
    }
}
