//! A message from the system bus, as the daemon's connection reads it off the socket, then
//! what symrouted decides about it: whom it believes (`nm::sender_of`: NetworkManager's
//! unique name or the bus driver, nobody else) and what the signal says (`nm::interpret`).
//! The daemon's own nm.rs (with dirty.rs, which it uses) is compiled in with #[path].
#![no_main]

use libfuzzer_sys::fuzz_target;
use zbus::names::{BusName, ErrorName, InterfaceName, MemberName, UniqueName};
use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{Endian, ObjectPath, Value};
use zbus::Message;

#[path = "../../crates/symrouted/src/dirty.rs"]
#[allow(dead_code)]
mod dirty;
#[path = "../../crates/symrouted/src/nm.rs"]
#[allow(dead_code)]
mod nm;

use nm::{interpret, sender_of, Sender};

/// The D-Bus primary header's length fields, as zbus's socket reader uses them to cut one
/// message from the stream: `None` for bytes it would not take as one.
fn message_len(bytes: &[u8]) -> Option<(Endian, usize)> {
    let endian = match bytes.first()? {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return None,
    };
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        } as usize)
    };
    let header = 16usize.checked_add(u32_at(12)?)?;
    let total = header
        .checked_add((8 - header % 8) % 8)?
        .checked_add(u32_at(4)?)?;
    (total <= 128 << 20).then_some((endian, total))
}

/// Whether every name in the header fields is valid as zbus checks it when the header is
/// read. zbus 5.13 accepts a message whose path, interface, member, error name, destination
/// or sender field is no valid name (the `Value` conversions that parse the fields skip the
/// name's check) and panics when `Message::header()` reads that field back; found by this
/// target, see docs/fuzzing.md. A bus checks these fields of every message it routes and
/// stamps the sender itself, so the daemon never gets one; such inputs are left out so the
/// target keeps exercising the daemon's own decisions.
fn header_names_valid(data: &Data<'static, 'static>) -> bool {
    let encoded = data.slice(16..);
    let Ok((fields, _)) = encoded.deserialize::<Vec<(u8, Value<'_>)>>() else {
        return false;
    };
    fields.iter().all(|(code, value)| {
        let text = match value {
            Value::Str(s) => s.as_str(),
            Value::ObjectPath(p) => p.as_str(),
            _ => return true,
        };
        match code {
            1 => ObjectPath::try_from(text).is_ok(),
            2 => InterfaceName::try_from(text).is_ok(),
            3 => MemberName::try_from(text).is_ok(),
            4 => ErrorName::try_from(text).is_ok(),
            6 => BusName::try_from(text).is_ok(),
            7 => UniqueName::try_from(text).is_ok(),
            _ => true,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Some((endian, len)) = message_len(bytes) else {
        return;
    };
    let Some(bytes) = bytes.get(..len) else {
        return;
    };
    let data = Data::new(bytes.to_vec(), Context::new_dbus(endian, 0));
    if !header_names_valid(&data) {
        return;
    }
    // SAFETY: what zbus's own socket reader does with the bytes it received (no file
    // descriptors here); garbage is an Err.
    let Ok(msg) = (unsafe { Message::from_bytes(data) }) else {
        return;
    };
    let header = msg.header();
    let sender = header.sender().map(|s| s.to_string());
    let owner_change = header.interface().map(|i| i.as_str()) == Some("org.freedesktop.DBus")
        && header.member().map(|m| m.as_str()) == Some("NameOwnerChanged");
    for owner in [None, Some(":1.7"), sender.as_deref()] {
        match sender_of(&msg, owner) {
            Sender::Driver => {
                assert!(owner_change && sender.as_deref() == Some("org.freedesktop.DBus"))
            }
            Sender::NetworkManager => {
                assert!(!owner_change && owner.is_some() && sender.as_deref() == owner);
                assert!(owner.is_some_and(|o| o.starts_with(':')));
            }
            Sender::Forged => {}
        }
    }
    match interpret(&msg) {
        Ok(_) => {}
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "a multi-line log line: {line:?}");
        }
    }
});
