//! Addresses as `ip` writes them, IPv4 without the formatting machinery: `status` writes
//! two for each of an uplink table's 100 000 routes, and `Ipv4Addr`'s own `Display` (four
//! padded integers) was a third of that time.

use std::fmt;
use std::net::IpAddr;

/// `Display` of an address, the same text as `IpAddr`'s (no width or padding).
pub(crate) struct AddrText(pub(crate) IpAddr);

impl fmt::Display for AddrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let IpAddr::V4(v4) = self.0 else {
            return self.0.fmt(f);
        };
        let mut buf = [0u8; 15];
        let mut n = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                buf[n] = b'.';
                n += 1;
            }
            if octet >= 100 {
                buf[n] = b'0' + octet / 100;
                n += 1;
            }
            if octet >= 10 {
                buf[n] = b'0' + octet / 10 % 10;
                n += 1;
            }
            buf[n] = b'0' + octet % 10;
            n += 1;
        }
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_ipaddr_writes() {
        let mut some: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "192.168.10.1",
            "1.20.199.250",
            "::",
            "fd01::2",
            "::ffff:10.1.2.3",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        some.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)])));
        for a in some {
            assert_eq!(AddrText(a).to_string(), a.to_string());
        }
    }
}
