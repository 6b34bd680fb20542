//! The text of an errno, as the kernel's refusals (netlink errors, a lookup's answer) are
//! shown: plain data shared by kernel/ (its errors) and views/ (explain, doctor).

/// `Network is unreachable (errno 101)`: the system's text, with the errno an admin can grep
/// for.
pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)".
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{text} (errno {errno})")
}
