//! The NetworkManager source: its D-Bus signals, turned into "this interface changed".
//!
//! The kernel stays the only state: a signal only says which interface to look at. It is
//! there for what NetworkManager knows before or besides the kernel (a device's state, a DHCP
//! lease that changed), and NetworkManager 1.42 dispatches no hook when a renewal changes
//! the address.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use zbus::message::Type;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::dirty::Dirty;

pub const BUS_NAME: &str = "org.freedesktop.NetworkManager";
const PATH: &str = "/org/freedesktop/NetworkManager";
const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// The bus driver's name, which is also the sender of its signals.
const DRIVER: &str = "org.freedesktop.DBus";
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
/// Signals queued in zbus before it drops the oldest. Only NetworkManager's own signals get
/// into this queue: zbus matches the sender's unique name too.
const QUEUE: usize = 4096;
/// `NameOwnerChanged` signals queued. zbus takes the driver's name for a unique name and
/// matches the sender of these too, so forgeries do not get here.
const OWNER_QUEUE: usize = 256;
/// Bounds on what is kept about NetworkManager's devices.
const MAX_DEVICES: usize = 4096;
const MAX_CONFIGS: usize = 4 * MAX_DEVICES;
const MAX_UNKNOWN_CONFIGS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum NmError {
    #[error("cannot connect to the system D-Bus: {0}")]
    Bus(#[source] zbus::Error),
    #[error("NetworkManager is not on the system bus")]
    Absent,
    #[error("the system D-Bus did not answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("connecting to the system D-Bus: {0}")]
    Task(String),
    #[error("asking NetworkManager for {what}: {source}")]
    Call {
        what: String,
        #[source]
        source: zbus::Error,
    },
}

/// The file system path of the system bus's socket (`DBUS_SYSTEM_BUS_ADDRESS` is honoured,
/// read by zbus's own parser), `None` for an address that is no socket file (abstract, TCP).
pub fn system_bus_socket() -> Option<std::path::PathBuf> {
    use zbus::address::transport::{Transport, UnixSocket};
    match zbus::Address::system().ok()?.transport() {
        Transport::Unix(unix) => match unix.path() {
            UnixSocket::File(path) => Some(path.clone()),
            _ => None,
        },
        _ => None,
    }
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
    /// NetworkManager's name has a new owner (its unique name), or none.
    OwnerChanged(Option<String>),
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
        (DRIVER, "NameOwnerChanged") => {
            let (name, _old, new): (String, String, String) =
                body.deserialize().map_err(|e| malformed(e.to_string()))?;
            if name == BUS_NAME {
                Ok(Signal::OwnerChanged(
                    Some(new).filter(|n| n.starts_with(':')),
                ))
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

/// Who sent a signal, as the bus stamped it (a client cannot choose its sender field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The bus driver announcing a name's new owner.
    Driver,
    /// The connection that owns NetworkManager's name now.
    NetworkManager,
    /// Anyone else: a local user can send any signal to our unique name, and a unicast signal
    /// bypasses match rules.
    Forged,
}

/// Decides whether a signal may be acted on. `owner` is NetworkManager's unique name, `None`
/// while it is not on the bus. Pure, so it is unit-tested without a bus.
pub fn sender_of(msg: &Message, owner: Option<&str>) -> Sender {
    let header = msg.header();
    let sender = header.sender().map(|s| s.as_str());
    let owner_change = header.interface().map(|i| i.as_str()) == Some(DRIVER)
        && header.member().map(|m| m.as_str()) == Some("NameOwnerChanged");
    match sender {
        // The driver's messages carry its well-known name; no connection can own that name.
        Some(DRIVER) if owner_change => Sender::Driver,
        Some(s) if !owner_change && owner == Some(s) && s.starts_with(':') => {
            Sender::NetworkManager
        }
        _ => Sender::Forged,
    }
}

/// Whether a call failed because NetworkManager owns its name but has not exported the object
/// yet (between the two at its start).
fn not_exported_yet(e: &NmError) -> bool {
    matches!(e, NmError::Call { source: zbus::Error::MethodError(name, _, _), .. }
        if matches!(name.as_str(),
            "org.freedesktop.DBus.Error.UnknownMethod"
                | "org.freedesktop.DBus.Error.UnknownObject"
                | "org.freedesktop.DBus.Error.UnknownInterface"))
}

/// Inserts unless the map is full; `false` when it was full.
fn insert_bounded(
    map: &mut HashMap<String, String>,
    cap: usize,
    key: String,
    value: String,
) -> bool {
    if map.len() >= cap && !map.contains_key(&key) {
        return false;
    }
    map.insert(key, value);
    true
}

/// A kernel interface name as NetworkManager may report one (IFNAMSIZ - 1 bytes at most).
fn interface_name(name: String) -> Option<String> {
    (!name.is_empty() && name.len() <= 15 && !name.contains(['/', '\0'])).then_some(name)
}

/// A connection to the system bus following NetworkManager: who owns its name, and what is
/// known about its devices. Everything it learns comes from NetworkManager's own replies and
/// from signals stamped with its unique name.
pub struct NetworkManager {
    conn: Connection,
    /// `NameOwnerChanged` for NetworkManager's name.
    owner_changes: MessageStream,
    /// NetworkManager's signals, matched on its unique name (by the bus and again by zbus);
    /// `None` while it is not on the bus.
    signals: Option<MessageStream>,
    /// NetworkManager's unique name; method calls go there, not to the well-known name.
    owner: Option<String>,
    /// Device object path → the kernel interface carrying its IP traffic.
    devices: HashMap<String, String>,
    /// Configuration object path → device object path.
    configs: HashMap<String, String>,
    /// Configuration objects no known device points at yet: looked up once after the drain.
    unknown_configs: BTreeSet<String>,
    /// More unknown configuration objects than are kept: every device is marked.
    unknown_overflow: bool,
    /// A forged `NameOwnerChanged` got through (zbus should have dropped it): it may have
    /// pushed a real one out of the queue, so the bus is asked once after the drain.
    verify_owner: bool,
    /// NetworkManager took its name before exporting its objects (it does, at start): its
    /// devices are read again after its next signals, once per drain, until that works.
    devices_pending: bool,
    /// Forged signals dropped so far (logged at powers of two, at debug level).
    dropped: u64,
    /// The device maps were full once (logged once).
    full: bool,
}

impl NetworkManager {
    /// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured), finds who owns
    /// NetworkManager's name, subscribes and learns the devices. NetworkManager need not be
    /// on the bus: [`NetworkManager::present`] tells, and it is followed once it appears.
    pub async fn connect() -> Result<NetworkManager, NmError> {
        let build = zbus::connection::Builder::system()
            .map_err(NmError::Bus)?
            .method_timeout(CALL_TIMEOUT)
            .build();
        let conn = tokio::time::timeout(CALL_TIMEOUT, build)
            .await
            .map_err(|_| NmError::Timeout)?
            .map_err(NmError::Bus)?;
        if let Some(name) = conn.unique_name() {
            log::debug!("connected to the system bus as {name}");
        }
        // Subscribe before asking who owns the name, so no change falls in between.
        let owner = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(DRIVER)
            .and_then(|b| b.interface(DRIVER))
            .and_then(|b| b.member("NameOwnerChanged"))
            .and_then(|b| b.arg(0, BUS_NAME))
            .map_err(NmError::Bus)?
            .build();
        let owner_changes = MessageStream::for_match_rule(owner, &conn, Some(OWNER_QUEUE))
            .await
            .map_err(NmError::Bus)?;
        let mut nm = NetworkManager {
            conn,
            owner_changes,
            signals: None,
            owner: None,
            devices: HashMap::new(),
            configs: HashMap::new(),
            unknown_configs: BTreeSet::new(),
            unknown_overflow: false,
            verify_owner: false,
            devices_pending: false,
            dropped: 0,
            full: false,
        };
        let owner = nm.name_owner().await?;
        nm.follow(owner).await?;
        Ok(nm)
    }

    /// Whether NetworkManager owns its name on the bus.
    pub fn present(&self) -> bool {
        self.owner.is_some()
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
        let signals = async {
            match self.signals.as_mut() {
                Some(signals) => signals.next().await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = self.owner_changes.next() => message,
            message = signals => message,
        };
        match message {
            // zbus stops reading after a socket error: the connection is gone, which the
            // caller reports once.
            Some(Err(zbus::Error::InputOutput(e))) => {
                log::debug!("system bus connection: {e}");
                None
            }
            message => message,
        }
    }

    /// The next signal if one is already queued; `Some(None)` when the connection is gone.
    pub fn try_next(&mut self) -> Option<Option<zbus::Result<Message>>> {
        self.next().now_or_never()
    }

    /// Marks what a signal is about. Forgeries are dropped before their body is read;
    /// garbage from NetworkManager itself is logged in one line and otherwise ignored.
    pub async fn handle(&mut self, msg: zbus::Result<Message>, dirty: &mut Dirty) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                log::warn!("ignoring unreadable D-Bus message: {e}");
                return;
            }
        };
        let sender = sender_of(&msg, self.owner.as_deref());
        if sender == Sender::Forged {
            if msg.header().member().map(|m| m.as_str()) == Some("NameOwnerChanged") {
                self.verify_owner = true;
            }
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::debug!(
                    "dropped {} D-Bus signal(s) sent by neither the bus nor NetworkManager",
                    self.dropped
                );
            }
            return;
        }
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
            Signal::OwnerChanged(owner) => self.owner_changed(owner, dirty).await,
            Signal::Device {
                path,
                configs,
                name,
            } => {
                for config in configs {
                    let ok = insert_bounded(&mut self.configs, MAX_CONFIGS, config, path.clone());
                    self.note_full(ok);
                }
                if let Some(name) = name.and_then(interface_name) {
                    let ok = insert_bounded(&mut self.devices, MAX_DEVICES, path.clone(), name);
                    self.note_full(ok);
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
            Signal::Config { path } => match self.configs.get(&path) {
                Some(device) => {
                    let device = device.clone();
                    self.mark_device(&device, dirty).await;
                }
                // NetworkManager announces a new object on its device a moment before or after
                // the object's own change: learn the devices again, once per drain.
                None if self.unknown_configs.len() < MAX_UNKNOWN_CONFIGS => {
                    self.unknown_configs.insert(path);
                }
                None => self.unknown_overflow = true,
            },
        }
    }

    /// Work deferred to the end of a drain, so that a burst costs one round of calls.
    pub async fn settle(&mut self, dirty: &mut Dirty) {
        if std::mem::take(&mut self.verify_owner) {
            match self.name_owner().await {
                Ok(owner) if owner != self.owner => self.owner_changed(owner, dirty).await,
                Ok(_) => {}
                Err(e) => log::debug!("{e}"),
            }
        }
        if self.devices_pending {
            match self.load_devices().await {
                Ok(()) => {
                    for name in self.devices.values() {
                        dirty.mark_name(name.clone());
                    }
                }
                Err(e) => log::debug!("{e}"),
            }
        }
        let overflow = std::mem::take(&mut self.unknown_overflow);
        if self.unknown_configs.is_empty() && !overflow {
            return;
        }
        let unknown = std::mem::take(&mut self.unknown_configs);
        if let Err(e) = self.load_devices().await {
            log::warn!("{e}");
        }
        if overflow {
            for name in self.devices.values() {
                dirty.mark_name(name.clone());
            }
            return;
        }
        for path in unknown {
            match self.configs.get(&path).and_then(|d| self.devices.get(d)) {
                Some(name) => dirty.mark_name(name.clone()),
                None => log::debug!("NetworkManager: {path} belongs to no device"),
            }
        }
    }

    /// NetworkManager's name has a new owner, or none: follow the new one from scratch.
    async fn owner_changed(&mut self, owner: Option<String>, dirty: &mut Dirty) {
        if owner == self.owner {
            return;
        }
        match (&self.owner, &owner) {
            (_, None) => log::info!("NetworkManager left the bus; following the kernel only"),
            (None, Some(new)) => log::info!("NetworkManager is on the bus ({new}); following it"),
            (Some(_), Some(new)) => log::info!("NetworkManager restarted ({new}); following it"),
        }
        if let Err(e) = self.follow(owner).await {
            log::warn!("{e}");
        }
        // Whatever it changed while we were not listening.
        for name in self.devices.values() {
            dirty.mark_name(name.clone());
        }
    }

    /// Forgets everything about the previous owner and subscribes to `owner`'s signals.
    async fn follow(&mut self, owner: Option<String>) -> Result<(), NmError> {
        self.signals = None;
        self.devices.clear();
        self.configs.clear();
        self.unknown_configs.clear();
        self.unknown_overflow = false;
        self.devices_pending = false;
        self.owner = owner;
        let Some(owner) = self.owner.clone() else {
            return Ok(());
        };
        // Subscribe before reading the devices, so no change falls in between.
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(owner.as_str())
            .and_then(|b| b.path_namespace(PATH))
            .map_err(NmError::Bus)?
            .build();
        let signals = MessageStream::for_match_rule(rule, &self.conn, Some(QUEUE))
            .await
            .map_err(NmError::Bus)?;
        self.signals = Some(signals);
        match self.load_devices().await {
            Err(e) if not_exported_yet(&e) => {
                log::debug!("{e}; reading the devices again after its next signals");
                Ok(())
            }
            result => result,
        }
    }

    /// Who owns NetworkManager's name now, asked of the bus driver.
    async fn name_owner(&self) -> Result<Option<String>, NmError> {
        let reply = self
            .conn
            .call_method(
                Some(DRIVER),
                "/org/freedesktop/DBus",
                Some(DRIVER),
                "GetNameOwner",
                &(BUS_NAME,),
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
            {
                return Ok(None)
            }
            Err(e) => return Err(NmError::Bus(e)),
        };
        let owner: String = reply.body().deserialize().map_err(NmError::Bus)?;
        Ok(Some(owner).filter(|o| o.starts_with(':')))
    }

    fn note_full(&mut self, inserted: bool) {
        if !inserted && !self.full {
            self.full = true;
            log::warn!(
                "NetworkManager reports more than {MAX_DEVICES} devices; the others are \
                 followed through the kernel only"
            );
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

    /// A method call to NetworkManager's unique name: only that connection can answer it.
    async fn call<B>(
        &self,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
    ) -> zbus::Result<Message>
    where
        B: zbus::export::serde::Serialize + zbus::zvariant::DynamicType,
    {
        let Some(owner) = self.owner.as_deref() else {
            return Err(zbus::Error::Failure(format!("{BUS_NAME} has no owner")));
        };
        self.conn
            .call_method(Some(owner), path, Some(interface), method, body)
            .await
    }

    /// Reads every device; [`NetworkManager::devices_pending`] until that works.
    async fn load_devices(&mut self) -> Result<(), NmError> {
        let call = |source| NmError::Call {
            what: "its devices".into(),
            source,
        };
        self.devices_pending = true;
        let reply = self
            .call(PATH, BUS_NAME, "GetAllDevices", &())
            .await
            .map_err(call)?;
        self.devices_pending = false;
        let paths: Vec<OwnedObjectPath> = reply.body().deserialize().map_err(call)?;
        for path in paths.iter().take(MAX_DEVICES) {
            if let Err(e) = self.load_device(path.as_str()).await {
                // A device removed meanwhile; its own signals follow.
                log::debug!("{e}");
            }
        }
        self.note_full(paths.len() <= MAX_DEVICES);
        Ok(())
    }

    /// Reads one device's interface name and configuration objects.
    async fn load_device(&mut self, path: &str) -> Result<(), NmError> {
        let call = |source| NmError::Call {
            what: format!("device {path}"),
            source,
        };
        let reply = self
            .call(path, PROPERTIES, "GetAll", &(DEVICE,))
            .await
            .map_err(call)?;
        let props: HashMap<String, OwnedValue> = reply.body().deserialize().map_err(call)?;
        let name = ["IpInterface", "Interface"]
            .iter()
            .filter_map(|key| props.get(*key))
            .find_map(|v| text(v).and_then(interface_name));
        if let Some(name) = name {
            let ok = insert_bounded(&mut self.devices, MAX_DEVICES, path.to_string(), name);
            self.note_full(ok);
        }
        for config in CONFIG_PROPERTIES
            .iter()
            .filter_map(|key| props.get(*key))
            .filter_map(object_path)
        {
            let ok = insert_bounded(&mut self.configs, MAX_CONFIGS, config, path.to_string());
            self.note_full(ok);
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

    fn from(sender: &str, path: &str, interface: &str, member: &str) -> Message {
        Message::signal(path, interface, member)
            .unwrap()
            .sender(sender)
            .unwrap()
            .build(&(BUS_NAME, ":1.1", ":1.9"))
            .unwrap()
    }

    #[test]
    fn only_the_owner_and_the_driver_are_believed() {
        let owner = Some(":1.7");
        let nm = from(":1.7", DEV, DEVICE, "StateChanged");
        assert_eq!(sender_of(&nm, owner), Sender::NetworkManager);
        // The same signal from another connection, or while NetworkManager is not on the bus.
        assert_eq!(
            sender_of(&from(":1.8", DEV, DEVICE, "StateChanged"), owner),
            Sender::Forged
        );
        assert_eq!(sender_of(&nm, None), Sender::Forged);
        let driver = from(DRIVER, "/org/freedesktop/DBus", DRIVER, "NameOwnerChanged");
        assert_eq!(sender_of(&driver, owner), Sender::Driver);
        assert_eq!(sender_of(&driver, None), Sender::Driver);
        // NetworkManager itself cannot announce a new owner of its name.
        let forged = from(":1.7", "/org/freedesktop/DBus", DRIVER, "NameOwnerChanged");
        assert_eq!(sender_of(&forged, owner), Sender::Forged);
        // The driver's name is believed only for owner changes.
        assert_eq!(
            sender_of(&from(DRIVER, DEV, DEVICE, "StateChanged"), Some(DRIVER)),
            Sender::Forged
        );
        // No sender at all (a peer-to-peer message).
        let bare = signal(DEV, DEVICE, "StateChanged", &(1u32, 2u32, 3u32));
        assert_eq!(sender_of(&bare, owner), Sender::Forged);
    }

    #[test]
    fn owner_changes_carry_the_new_unique_name() {
        let msg = from(DRIVER, "/org/freedesktop/DBus", DRIVER, "NameOwnerChanged");
        assert_eq!(
            interpret(&msg),
            Ok(Signal::OwnerChanged(Some(":1.9".into())))
        );
        let gone = signal(
            "/org/freedesktop/DBus",
            DRIVER,
            "NameOwnerChanged",
            &(BUS_NAME, ":1.9", ""),
        );
        assert_eq!(interpret(&gone), Ok(Signal::OwnerChanged(None)));
        let other = signal(
            "/org/freedesktop/DBus",
            DRIVER,
            "NameOwnerChanged",
            &("org.example", "", ":1.3"),
        );
        assert_eq!(interpret(&other), Ok(Signal::Ignored));
    }

    #[test]
    fn maps_stay_bounded() {
        let mut map = HashMap::new();
        for i in 0..10 {
            insert_bounded(&mut map, 4, format!("k{i}"), "v".into());
        }
        assert_eq!(map.len(), 4);
        // A key already there is still updated when the map is full.
        assert!(insert_bounded(&mut map, 4, "k0".into(), "w".into()));
        assert_eq!(map["k0"], "w");
        assert!(!insert_bounded(&mut map, 4, "k9".into(), "w".into()));
    }

    #[test]
    fn interface_names_are_kernel_sized() {
        assert_eq!(interface_name("eth1".into()), Some("eth1".into()));
        assert_eq!(interface_name("a".repeat(15)), Some("a".repeat(15)));
        assert_eq!(interface_name("a".repeat(16)), None);
        assert_eq!(interface_name(String::new()), None);
        assert_eq!(interface_name("a/b".into()), None);
    }
}
