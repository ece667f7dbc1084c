//! Client IP criteria: single addresses and CIDR ranges, IPv4 and IPv6,
//! written on `std::net` (it is a few lines; no crate needed).
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is treated as the IPv4
//! address it carries, because agents behind dual-stack listeners report
//! clients that way.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// `a.b.c.d/n`, `x::y/n`, or a single address (a full-length prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IpRange {
    /// The network address, host bits cleared.
    network: IpAddr,
    prefix: u8,
}

/// A string that is neither an IP address nor a CIDR range.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("`{0}` is not an IP address or CIDR range")]
pub struct InvalidIpRange(pub String);

impl IpRange {
    /// The range's network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = InvalidIpRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIpRange(s.to_string());
        let trimmed = s.trim();
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((addr, prefix)) => {
                let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
                (addr, Some(prefix))
            }
            None => (trimmed, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        // A mapped address with a v6 prefix (e.g. ::ffff:10.0.0.0/104) is a v4 range.
        let (addr, prefix) = match (addr, canonical(addr), prefix) {
            (IpAddr::V6(_), IpAddr::V4(v4), Some(p)) if p >= 96 => (IpAddr::V4(v4), Some(p - 96)),
            (IpAddr::V6(_), IpAddr::V4(_), Some(_)) => (addr, prefix),
            (_, canonical, p) => (canonical, p),
        };
        let network = match addr {
            IpAddr::V4(v4) => {
                let prefix = prefix.unwrap_or(32);
                if prefix > 32 {
                    return Err(invalid());
                }
                return Ok(IpRange {
                    network: IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
                    prefix,
                });
            }
            IpAddr::V6(v6) => v6,
        };
        let prefix = prefix.unwrap_or(128);
        if prefix > 128 {
            return Err(invalid());
        }
        Ok(IpRange {
            network: IpAddr::V6(mask_v6(u128::from(network), prefix).into()),
            prefix,
        })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether `ip` (as an agent reported it) lies in any of `ranges`. An empty
/// list matches anything, even an unknown or unparsable client address; a
/// non-empty list never matches an address that does not parse.
pub fn ip_in_any(ranges: &[IpRange], ip: Option<&str>) -> bool {
    if ranges.is_empty() {
        return true;
    }
    let Some(ip) = ip.and_then(parse_ip) else {
        return false;
    };
    ranges.iter().any(|r| r.contains(ip))
}

/// Parses a client address, accepting the `[v6]:port` and `v4:port` forms
/// agents sometimes send.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = text.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    None
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        s.parse().expect("valid range")
    }

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).expect("valid ip")
    }

    #[test]
    fn cidr_ranges_contain_their_addresses_only() {
        let r = range("10.1.0.0/16");
        assert!(r.contains(ip("10.1.255.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(range("192.168.1.77/24").to_string(), "192.168.1.0/24");
    }

    #[test]
    fn single_address_is_a_full_prefix() {
        let r = range("192.168.1.5");
        assert_eq!(r.prefix(), 32);
        assert!(r.contains(ip("192.168.1.5")));
        assert!(!r.contains(ip("192.168.1.6")));
    }

    #[test]
    fn ipv6_ranges_work_and_never_match_ipv4() {
        let r = range("2001:db8::/32");
        assert!(r.contains(ip("2001:db8:1::5")));
        assert!(!r.contains(ip("2001:db9::1")));
        assert!(!r.contains(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_ipv6_addresses_match_ipv4_ranges() {
        assert!(range("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(range("::ffff:10.0.0.0/104").contains(ip("10.9.8.7")));
    }

    #[test]
    fn addresses_with_ports_are_accepted() {
        assert_eq!(ip("10.0.0.1:5555"), ip("10.0.0.1"));
        assert_eq!(ip("[2001:db8::1]:443"), ip("2001:db8::1"));
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "::/129", "abc", "10.0.0.0/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_range_list_matches_any_client_even_unknown() {
        assert!(ip_in_any(&[], None));
        assert!(!ip_in_any(&[range("10.0.0.0/8")], None));
        assert!(!ip_in_any(&[range("10.0.0.0/8")], Some("not-an-ip")));
    }
}
