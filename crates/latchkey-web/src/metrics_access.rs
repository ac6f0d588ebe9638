//! Who may read `/metrics` (`metrics_allow`, `metrics_listen`): client networks, and where the
//! route is served. Configuration the binary builds and `AppState` carries; the route itself is
//! `metrics.rs`.

use std::net::IpAddr;

/// An address or a network in CIDR notation (`127.0.0.0/8`, `::1`, `10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `ADDR` or `ADDR/PREFIX`; an address alone is one host.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not an address or a network like 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32),
            IpAddr::V6(v6) => (v6.to_bits(), 128),
        };
        let (net, width) = bits(self.addr);
        let (ip, ip_width) = bits(ip.to_canonical());
        if width != ip_width {
            return false;
        }
        let host_bits = u32::from(width - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        net & mask == ip & mask
    }
}

/// The loopback networks: the default of `metrics_allow`.
pub fn loopback() -> Vec<IpNet> {
    vec![
        IpNet {
            addr: IpAddr::from([127, 0, 0, 0]),
            prefix: 8,
        },
        IpNet {
            addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            prefix: 128,
        },
    ]
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// On the main listener, to these client networks.
    Main(Vec<IpNet>),
    /// On a listener of its own (`metrics_listen`): not on the main one.
    Separate,
}

impl Default for MetricsAccess {
    fn default() -> Self {
        Self::Main(loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn networks() {
        let lo = loopback();
        for inside in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(lo.iter().any(|n| n.contains(ip(inside))), "{inside}");
        }
        for outside in ["128.0.0.1", "10.0.0.1", "::2", "fe80::1"] {
            assert!(!lo.iter().any(|n| n.contains(ip(outside))), "{outside}");
        }
        let net = IpNet::parse("10.1.0.0/16").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        let host = IpNet::parse(" 192.0.2.7 ").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all = IpNet::parse("0.0.0.0/0").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.0/-1",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }
}
