//! Connection accounting of the HTTP transport: per client address
//! ([`PerAddress`], keyed by [`client_key`]: IPv6 by /64), the MCP connections
//! against `http.max_connections` ([`McpConnections`], [`McpSlot`]), and the
//! open-connections gauge ([`ConnectionGuard`]). The listener's connect hook
//! (`http.rs`) makes them; the shared state (`state.rs`) and the health check
//! (`admin.rs`) read them.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;

/// The client a per-address limit counts: an IPv4 address (an IPv4-mapped IPv6
/// address is its IPv4 address); an IPv6 address's /64 (a host usually holds a
/// whole /64, so counting single addresses would let it walk around the limit).
/// Behind a proxy every connection has the proxy's address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Open connections (or listen streams) per client ([`client_key`]):
/// `http.max_connections_per_ip`, `limits.max_listen_streams_per_ip`.
#[derive(Debug, Default)]
pub struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One connection of an address, counted while it lives; `over` when the address
/// already held its limit as it connected (its requests are refused with 429).
#[derive(Debug)]
pub struct AddressGuard {
    table: Arc<PerAddress>,
    ip: IpAddr,
    /// The address was over its limit with this connection.
    pub over: bool,
}

impl PerAddress {
    /// Count a new connection from `ip`; `limit` decides whether it is one too many.
    pub fn connected(table: &Arc<PerAddress>, ip: IpAddr, limit: usize) -> AddressGuard {
        let ip = client_key(ip);
        let n = table.open.lock().map_or(0, |mut m| {
            let n = m.entry(ip).or_insert(0);
            *n += 1;
            *n
        });
        AddressGuard {
            table: table.clone(),
            ip,
            over: n > limit,
        }
    }

    /// Count one more for `ip` only if it holds fewer than `limit`; `None` when it
    /// holds `limit` already.
    pub fn try_take(table: &Arc<PerAddress>, ip: IpAddr, limit: usize) -> Option<AddressGuard> {
        let ip = client_key(ip);
        let mut m = table.open.lock().ok()?;
        let n = m.entry(ip).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                m.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(AddressGuard {
            table: table.clone(),
            ip,
            over: false,
        })
    }
}

/// Open MCP connections (`http.max_connections`): a connection counts from its
/// first `/mcp` request until it closes, so connections of the operations routes
/// never take an MCP connection's place.
#[derive(Debug)]
pub struct McpConnections {
    open: AtomicUsize,
    /// `http.max_connections`; `None` when the embedder's `HttpServer` sets the bound
    /// (a mounted server).
    pub max: Option<usize>,
}

impl McpConnections {
    /// A count capped at `max`.
    pub fn new(max: Option<usize>) -> McpConnections {
        McpConnections {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Open MCP connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// A connection's place among the MCP connections, taken at its first `/mcp`
/// request ([`McpSlot::take`]) and given back when the connection closes.
#[derive(Debug)]
pub struct McpSlot {
    table: Arc<McpConnections>,
    taken: AtomicBool,
}

impl McpSlot {
    /// A connection of `table`, not counted yet.
    pub fn new(table: Arc<McpConnections>) -> McpSlot {
        McpSlot {
            table,
            taken: AtomicBool::new(false),
        }
    }

    /// Count this connection as an MCP connection (once); false when
    /// `http.max_connections` are open already.
    pub fn take(&self) -> bool {
        if self.taken.load(Ordering::Acquire) {
            return true;
        }
        let max = self.table.max.unwrap_or(usize::MAX);
        let counted = self
            .table
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if counted {
            self.taken.store(true, Ordering::Release);
        }
        counted
    }
}

impl Drop for McpSlot {
    fn drop(&mut self) {
        if self.taken.load(Ordering::Acquire) {
            self.table.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.table.open.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Decrements the open-connections gauge when its connection closes.
pub struct ConnectionGuard(IntGauge);

impl ConnectionGuard {
    /// Count one more open connection.
    pub fn new(gauge: IntGauge) -> ConnectionGuard {
        gauge.inc();
        ConnectionGuard(gauge)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    /// Issue 18 item 2: an IPv6 client is counted by its /64 (it can pick any address
    /// in it), an IPv4-mapped one as its IPv4 address, an IPv4 one alone.
    #[test]
    fn the_per_address_key_groups_ipv6_by_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
        // Counted together: the second address of the same /64 is over a limit of 1.
        let table = Arc::new(PerAddress::default());
        let first = PerAddress::connected(&table, ip("2001:db8::1"), 1);
        assert!(!first.over);
        let second = PerAddress::connected(&table, ip("2001:db8::2:3"), 1);
        assert!(second.over);
        assert!(PerAddress::try_take(&table, ip("2001:db8::9"), 2).is_none());
        drop((first, second));
        assert!(PerAddress::try_take(&table, ip("2001:db8::9"), 1).is_some());
    }

    /// The MCP connection count stops at its cap, a connection counts once, and a
    /// closed one gives its place back.
    #[test]
    fn mcp_connections_stop_at_the_cap() {
        let table = Arc::new(McpConnections::new(Some(2)));
        let a = McpSlot::new(table.clone());
        let b = McpSlot::new(table.clone());
        let c = McpSlot::new(table.clone());
        assert!(a.take() && a.take(), "taken once, then kept");
        assert!(b.take());
        assert!(!c.take(), "the third is one too many");
        assert_eq!(table.open(), 2);
        drop(a);
        assert_eq!(table.open(), 1);
        assert!(c.take());
        drop(McpSlot::new(table.clone()));
        assert_eq!(table.open(), 2, "a slot never taken gives nothing back");
    }
}
