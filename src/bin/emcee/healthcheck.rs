//! `emcee healthcheck`: `GET /health` of a running server, for container health
//! checks without curl (exit 0 when it answers 200).

use std::net::SocketAddr;

/// Where a local probe connects for a server bound to `bind`: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn probe_address(bind: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = match bind.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `GET /health` on `addr` with a plain HTTP/1.1 request; the response status.
pub fn probe(addr: SocketAddr, timeout: std::time::Duration) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // The address as `Host`: an IP literal, which `/health` accepts whatever
    // `http.allowed_hosts` says (a DNS-rebinding page cannot send one).
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {line:?}")))
}
