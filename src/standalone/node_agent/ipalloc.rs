//! Loopback pod IPs: 127.0.0.N with N from 2 upwards, handed out round-robin as a cluster's
//! host-local IPAM does: a released address comes back only after the rest of 127.0.0.0/8.
//! Reusing it at once let a new pod's executor race a deleted pod's, still shutting down on
//! the same address and port.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Hands out distinct loopback addresses. `127.0.0.1` is the host IP and never allocated.
#[derive(Debug, Default)]
pub struct IpAllocator {
    used: BTreeSet<u32>,
    /// Where the search for the next free address starts (after the last one handed out).
    next: u32,
}

const FIRST: u32 = 2;
// 127.255.255.254: the last usable address of 127.0.0.0/8.
const LAST: u32 = (1 << 24) - 2;

fn to_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from((127u32 << 24) | n)
}

fn host_part(ip: Ipv4Addr) -> Option<u32> {
    let v = u32::from(ip);
    let n = v & 0x00ff_ffff;
    (v >> 24 == 127 && (FIRST..=LAST).contains(&n)).then_some(n)
}

impl IpAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates `preferred` if it is a free pod address and `usable` accepts it, else the
    /// next free address after the last one handed out that `usable` accepts (`usable` lets
    /// the caller skip addresses another process already serves on).
    pub fn allocate(
        &mut self,
        preferred: Option<Ipv4Addr>,
        mut usable: impl FnMut(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        if let Some(n) = preferred.and_then(host_part)
            && !self.used.contains(&n)
            && usable(to_ip(n))
        {
            self.used.insert(n);
            return Some(to_ip(n));
        }
        let start = self.next.clamp(FIRST, LAST);
        let found = (start..=LAST)
            .chain(FIRST..start)
            .find(|n| !self.used.contains(n) && usable(to_ip(*n)))?;
        self.used.insert(found);
        self.next = found + 1;
        Some(to_ip(found))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(n) = host_part(ip) {
            self.used.remove(&n);
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_two_upwards_and_reuses_only_after_wrapping() {
        let mut a = IpAllocator::new();
        let x = a.allocate(None, |_| true).unwrap();
        let y = a.allocate(None, |_| true).unwrap();
        assert_eq!(x, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(y, Ipv4Addr::new(127, 0, 0, 3));
        a.release(x);
        assert_eq!(
            a.allocate(None, |_| true),
            Some(Ipv4Addr::new(127, 0, 0, 4))
        );
        assert_eq!(a.in_use(), 2);
        // At the end of the range the search wraps to the lowest free address.
        a.next = LAST;
        assert_eq!(a.allocate(None, |_| true), Some(to_ip(LAST)));
        assert_eq!(a.allocate(None, |_| true), Some(x));
    }

    #[test]
    fn skips_unusable_and_honours_preference() {
        let mut a = IpAllocator::new();
        let skip = Ipv4Addr::new(127, 0, 0, 2);
        assert_eq!(
            a.allocate(None, |ip| ip != skip),
            Some(Ipv4Addr::new(127, 0, 0, 3))
        );
        let pref = Ipv4Addr::new(127, 0, 0, 9);
        assert_eq!(a.allocate(Some(pref), |_| true), Some(pref));
        // Taken or non-loopback preferences fall back to the next free address.
        assert_eq!(
            a.allocate(Some(pref), |_| true),
            Some(Ipv4Addr::new(127, 0, 0, 4))
        );
        assert_eq!(
            a.allocate(Some(Ipv4Addr::new(10, 0, 0, 1)), |_| true),
            Some(Ipv4Addr::new(127, 0, 0, 5))
        );
        assert_eq!(
            a.allocate(Some(Ipv4Addr::new(127, 0, 0, 1)), |_| true),
            Some(Ipv4Addr::new(127, 0, 0, 6))
        );
    }

    #[test]
    fn crosses_octet_boundaries() {
        let mut a = IpAllocator::new();
        let ip = a.allocate(None, |ip| ip.octets()[2] == 1).unwrap();
        assert_eq!(ip, Ipv4Addr::new(127, 0, 1, 0));
    }
}
