//! The NetworkManager source: its D-Bus signals, turned into "this interface changed".
//!
//! The kernel stays the only state: a signal only says which interface to look at. It is
//! there for what NetworkManager knows before or besides the kernel (a device's state, a DHCP
//! lease that changed), and NetworkManager 1.42 dispatches no hook when a renewal changes
//! the address.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{self, Select};
use futures::{FutureExt, StreamExt};
use zbus::message::Type;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::dirty::Dirty;

pub const BUS_NAME: &str = "org.freedesktop.NetworkManager";
const PATH: &str = "/org/freedesktop/NetworkManager";
const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// Device properties that point at the configuration objects whose changes we follow.
const CONFIG_PROPERTIES: [&str; 4] = ["Ip4Config", "Ip6Config", "Dhcp4Config", "Dhcp6Config"];
/// Device properties whose change can mean different addresses or routes. Others (a Wi-Fi
/// bitrate, statistics) change often and say nothing about routing.
const DEVICE_PROPERTIES: [&str; 8] = [
    "State",
    "Ip4Config",
    "Ip6Config",
    "Dhcp4Config",
    "Dhcp6Config",
    "IpInterface",
    "Interface",
    "Managed",
];
/// A hung NetworkManager must not stall the kernel source.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Signals queued in zbus before it drops the oldest; a drain reads them all anyway.
const QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum NmError {
    #[error("cannot connect to the system D-Bus: {0}")]
    Bus(#[source] zbus::Error),
    #[error("NetworkManager is not on the system bus")]
    Absent,
    #[error("asking NetworkManager for {what}: {source}")]
    Call {
        what: String,
        #[source]
        source: zbus::Error,
    },
}

/// A signal whose body is not what NetworkManager's API documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignoring malformed D-Bus signal {member} on {path}: {reason}")]
pub struct Malformed {
    pub member: String,
    pub path: String,
    pub reason: String,
}

/// What one signal says, before paths are turned into interface names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A device's state or properties changed; `configs` are configuration object paths it
    /// now points at, `name` its new interface name if that changed.
    Device {
        path: String,
        configs: Vec<String>,
        name: Option<String>,
    },
    /// An IP or DHCP configuration object changed (addresses, routes, a lease).
    Config {
        path: String,
    },
    DeviceAdded {
        path: String,
    },
    DeviceRemoved {
        path: String,
    },
    /// NetworkManager (re)started or stopped: `true` when it has an owner now.
    Restarted(bool),
    Ignored,
}

/// Reads a signal. Pure, so garbage handling is unit-tested without a bus.
pub fn interpret(msg: &Message) -> Result<Signal, Malformed> {
    let header = msg.header();
    let path = header.path().map(|p| p.to_string()).unwrap_or_default();
    let interface = header
        .interface()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let member = header.member().map(|m| m.to_string()).unwrap_or_default();
    let malformed = |reason: String| Malformed {
        member: format!("{interface}.{member}"),
        path: path.clone(),
        reason,
    };
    let body = msg.body();
    match (interface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus", "NameOwnerChanged") => {
            let (name, _old, new): (String, String, String) =
                body.deserialize().map_err(|e| malformed(e.to_string()))?;
            if name == BUS_NAME {
                Ok(Signal::Restarted(!new.is_empty()))
            } else {
                Ok(Signal::Ignored)
            }
        }
        (DEVICE, "StateChanged") => {
            let _: (u32, u32, u32) = body.deserialize().map_err(|e| malformed(e.to_string()))?;
            Ok(Signal::Device {
                path,
                configs: Vec::new(),
                name: None,
            })
        }
        (PROPERTIES, "PropertiesChanged") => {
            let (changed_interface, changed, _invalidated): (
                String,
                HashMap<String, OwnedValue>,
                Vec<String>,
            ) = body.deserialize().map_err(|e| malformed(e.to_string()))?;
            if changed_interface == DEVICE
                && changed
                    .keys()
                    .any(|k| DEVICE_PROPERTIES.contains(&k.as_str()))
            {
                let configs = CONFIG_PROPERTIES
                    .iter()
                    .filter_map(|key| changed.get(*key))
                    .filter_map(object_path)
                    .collect();
                let name = ["IpInterface", "Interface"]
                    .iter()
                    .filter_map(|key| changed.get(*key))
                    .find_map(|v| text(v).filter(|n| !n.is_empty()));
                Ok(Signal::Device {
                    path,
                    configs,
                    name,
                })
            } else if is_config_interface(&changed_interface) {
                Ok(Signal::Config { path })
            } else {
                Ok(Signal::Ignored)
            }
        }
        (BUS_NAME, "DeviceAdded" | "DeviceRemoved") => {
            let (device,): (OwnedObjectPath,) =
                body.deserialize().map_err(|e| malformed(e.to_string()))?;
            let path = device.to_string();
            Ok(if member == "DeviceAdded" {
                Signal::DeviceAdded { path }
            } else {
                Signal::DeviceRemoved { path }
            })
        }
        _ => Ok(Signal::Ignored),
    }
}

fn is_config_interface(interface: &str) -> bool {
    matches!(
        interface,
        "org.freedesktop.NetworkManager.IP4Config"
            | "org.freedesktop.NetworkManager.IP6Config"
            | "org.freedesktop.NetworkManager.DHCP4Config"
            | "org.freedesktop.NetworkManager.DHCP6Config"
    )
}

fn object_path(value: &OwnedValue) -> Option<String> {
    ObjectPath::try_from(value.try_clone().ok()?)
        .ok()
        .map(|p| p.to_string())
        .filter(|p| p != "/")
}

fn text(value: &OwnedValue) -> Option<String> {
    String::try_from(value.try_clone().ok()?).ok()
}

type Signals = Select<MessageStream, MessageStream>;

/// A subscription to NetworkManager's signals, with what is known about its devices.
pub struct NetworkManager {
    conn: Connection,
    signals: Signals,
    /// Device object path → the kernel interface carrying its IP traffic.
    devices: HashMap<String, String>,
    /// Configuration object path → device object path.
    configs: HashMap<String, String>,
}

impl NetworkManager {
    /// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured) and subscribes, then
    /// learns the devices. [`NmError::Absent`] when NetworkManager does not own its name.
    pub async fn connect() -> Result<NetworkManager, NmError> {
        let conn = zbus::connection::Builder::system()
            .map_err(NmError::Bus)?
            .method_timeout(CALL_TIMEOUT)
            .build()
            .await
            .map_err(NmError::Bus)?;
        let reply = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "NameHasOwner",
                &(BUS_NAME,),
            )
            .await
            .map_err(NmError::Bus)?;
        let present: bool = reply.body().deserialize().map_err(NmError::Bus)?;
        if !present {
            return Err(NmError::Absent);
        }
        // Subscribe before reading the devices, so no change falls in between.
        let from_nm = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(BUS_NAME)
            .and_then(|b| b.path_namespace(PATH))
            .map_err(NmError::Bus)?
            .build();
        let owner = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")
            .and_then(|b| b.interface("org.freedesktop.DBus"))
            .and_then(|b| b.member("NameOwnerChanged"))
            .and_then(|b| b.arg(0, BUS_NAME))
            .map_err(NmError::Bus)?
            .build();
        let from_nm = MessageStream::for_match_rule(from_nm, &conn, Some(QUEUE))
            .await
            .map_err(NmError::Bus)?;
        let owner = MessageStream::for_match_rule(owner, &conn, Some(16))
            .await
            .map_err(NmError::Bus)?;
        let mut nm = NetworkManager {
            conn,
            signals: stream::select(from_nm, owner),
            devices: HashMap::new(),
            configs: HashMap::new(),
        };
        nm.load_devices().await?;
        Ok(nm)
    }

    /// The interface names NetworkManager manages, for logging.
    pub fn interfaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.devices.values().cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// Waits for the next signal. `None` when the bus connection is gone. Cancel-safe.
    pub async fn next(&mut self) -> Option<zbus::Result<Message>> {
        self.signals.next().await
    }

    /// The next signal if one is already queued; `Some(None)` when the connection is gone.
    pub fn try_next(&mut self) -> Option<Option<zbus::Result<Message>>> {
        self.signals.next().now_or_never()
    }

    /// Marks what a signal is about. Garbage is logged in one line and otherwise ignored.
    pub async fn handle(&mut self, msg: zbus::Result<Message>, dirty: &mut Dirty) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                log::warn!("ignoring unreadable D-Bus message: {e}");
                return;
            }
        };
        let signal = match interpret(&msg) {
            Ok(signal) => signal,
            Err(e) => {
                log::warn!("{e}");
                return;
            }
        };
        log::debug!("NetworkManager: {signal:?}");
        match signal {
            Signal::Ignored => {}
            Signal::Device {
                path,
                configs,
                name,
            } => {
                for config in configs {
                    self.configs.insert(config, path.clone());
                }
                if let Some(name) = name {
                    self.devices.insert(path.clone(), name);
                }
                self.mark_device(&path, dirty).await;
            }
            Signal::DeviceAdded { path } => self.mark_device(&path, dirty).await,
            Signal::DeviceRemoved { path } => {
                // The kernel link (if it is one) goes with its own netlink event.
                if let Some(name) = self.devices.remove(&path) {
                    dirty.mark_name(name);
                }
                self.configs.retain(|_, device| *device != path);
            }
            Signal::Config { path } => {
                if !self.configs.contains_key(&path) {
                    // A configuration object we have not seen: learn the devices again.
                    if let Err(e) = self.load_devices().await {
                        log::warn!("{e}");
                    }
                }
                match self.configs.get(&path).cloned() {
                    Some(device) => self.mark_device(&device, dirty).await,
                    None => log::debug!("NetworkManager: {path} belongs to no device"),
                }
            }
            Signal::Restarted(running) => {
                self.devices.clear();
                self.configs.clear();
                if running {
                    log::info!("NetworkManager restarted");
                    if let Err(e) = self.load_devices().await {
                        log::warn!("{e}");
                    }
                    for name in self.devices.values() {
                        dirty.mark_name(name.clone());
                    }
                } else {
                    log::info!("NetworkManager left the bus; following the kernel only");
                }
            }
        }
    }

    async fn mark_device(&mut self, path: &str, dirty: &mut Dirty) {
        if !self.devices.contains_key(path) {
            if let Err(e) = self.load_device(path).await {
                log::debug!("{e}");
            }
        }
        if let Some(name) = self.devices.get(path) {
            dirty.mark_name(name.clone());
        }
    }

    async fn load_devices(&mut self) -> Result<(), NmError> {
        let call = |source| NmError::Call {
            what: "its devices".into(),
            source,
        };
        let reply = self
            .conn
            .call_method(Some(BUS_NAME), PATH, Some(BUS_NAME), "GetAllDevices", &())
            .await
            .map_err(call)?;
        let paths: Vec<OwnedObjectPath> = reply.body().deserialize().map_err(call)?;
        for path in paths {
            if let Err(e) = self.load_device(path.as_str()).await {
                // A device removed meanwhile; its own signals follow.
                log::debug!("{e}");
            }
        }
        Ok(())
    }

    /// Reads one device's interface name and configuration objects.
    async fn load_device(&mut self, path: &str) -> Result<(), NmError> {
        let call = |source| NmError::Call {
            what: format!("device {path}"),
            source,
        };
        let reply = self
            .conn
            .call_method(Some(BUS_NAME), path, Some(PROPERTIES), "GetAll", &(DEVICE,))
            .await
            .map_err(call)?;
        let props: HashMap<String, OwnedValue> = reply.body().deserialize().map_err(call)?;
        let name = ["IpInterface", "Interface"]
            .iter()
            .filter_map(|key| props.get(*key))
            .find_map(|v| text(v).filter(|n| !n.is_empty()));
        if let Some(name) = name {
            self.devices.insert(path.to_string(), name);
        }
        for config in CONFIG_PROPERTIES
            .iter()
            .filter_map(|key| props.get(*key))
            .filter_map(object_path)
        {
            self.configs.insert(config, path.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    fn signal<B>(path: &str, interface: &str, member: &str, body: &B) -> Message
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        Message::signal(path, interface, member)
            .unwrap()
            .build(body)
            .unwrap()
    }

    const DEV: &str = "/org/freedesktop/NetworkManager/Devices/3";

    #[test]
    fn device_state_change() {
        let msg = signal(DEV, DEVICE, "StateChanged", &(100u32, 70u32, 0u32));
        assert_eq!(
            interpret(&msg),
            Ok(Signal::Device {
                path: DEV.into(),
                configs: vec![],
                name: None
            })
        );
    }

    #[test]
    fn device_properties_carry_new_config_paths_and_names() {
        let mut changed: HashMap<&str, Value> = HashMap::new();
        changed.insert(
            "Ip4Config",
            Value::from(
                ObjectPath::try_from("/org/freedesktop/NetworkManager/IP4Config/9").unwrap(),
            ),
        );
        changed.insert(
            "Dhcp6Config",
            Value::from(ObjectPath::try_from("/").unwrap()),
        );
        changed.insert("IpInterface", Value::from("eth1"));
        let msg = signal(
            DEV,
            PROPERTIES,
            "PropertiesChanged",
            &(DEVICE, changed, Vec::<String>::new()),
        );
        assert_eq!(
            interpret(&msg),
            Ok(Signal::Device {
                path: DEV.into(),
                configs: vec!["/org/freedesktop/NetworkManager/IP4Config/9".into()],
                name: Some("eth1".into()),
            })
        );
    }

    #[test]
    fn config_changes_and_device_lifecycle() {
        let cfg = "/org/freedesktop/NetworkManager/DHCP4Config/2";
        let msg = signal(
            cfg,
            PROPERTIES,
            "PropertiesChanged",
            &(
                "org.freedesktop.NetworkManager.DHCP4Config",
                HashMap::<&str, Value>::new(),
                Vec::<String>::new(),
            ),
        );
        assert_eq!(interpret(&msg), Ok(Signal::Config { path: cfg.into() }));
        let added = signal(
            PATH,
            BUS_NAME,
            "DeviceAdded",
            &(ObjectPath::try_from(DEV).unwrap(),),
        );
        assert_eq!(
            interpret(&added),
            Ok(Signal::DeviceAdded { path: DEV.into() })
        );
    }

    #[test]
    fn garbage_is_a_one_line_error_not_a_crash() {
        for msg in [
            signal(DEV, DEVICE, "StateChanged", &("up",)),
            signal(DEV, PROPERTIES, "PropertiesChanged", &(42u8,)),
            signal(PATH, BUS_NAME, "DeviceAdded", &("not a path", 1u32)),
            signal(DEV, DEVICE, "StateChanged", &()),
        ] {
            let e = interpret(&msg).expect_err("garbage accepted");
            let line = e.to_string();
            assert!(
                line.starts_with("ignoring malformed D-Bus signal "),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn device_properties_that_say_nothing_about_routing_are_ignored() {
        let mut changed: HashMap<&str, Value> = HashMap::new();
        changed.insert("Bitrate", Value::from(54000u32));
        for interface in [DEVICE, "org.freedesktop.NetworkManager.Device.Wireless"] {
            let msg = signal(
                DEV,
                PROPERTIES,
                "PropertiesChanged",
                &(interface, changed.clone(), Vec::<String>::new()),
            );
            assert_eq!(interpret(&msg), Ok(Signal::Ignored), "{interface}");
        }
    }

    #[test]
    fn unrelated_signals_are_ignored() {
        let msg = signal(PATH, BUS_NAME, "CheckPermissions", &());
        assert_eq!(interpret(&msg), Ok(Signal::Ignored));
        let other = signal(
            DEV,
            PROPERTIES,
            "PropertiesChanged",
            &(
                "org.freedesktop.NetworkManager.AccessPoint",
                HashMap::<&str, Value>::new(),
                Vec::<String>::new(),
            ),
        );
        assert_eq!(interpret(&other), Ok(Signal::Ignored));
    }
}
