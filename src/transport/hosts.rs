//! Host and Origin checks (DESIGN §1): every `/mcp` request's `Host` (and `Origin`,
//! when sent) must name an allowed host (`http.allowed_hosts`) or origin
//! (`http.allowed_origins`), parsed as authorities and given once; the operations
//! routes also take an IP-literal `Host` (a probe by address; DNS rebinding always
//! sends a name). Both the MCP routes (`http.rs`) and the operations routes
//! (`admin.rs`) use these; neither imports the other for them.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::uri::Authority;

use crate::config::HttpConfig;

/// The host of a `Host` header value or an origin's authority (`host[:port]`,
/// `[v6][:port]`), lowercased; `None` unless it parses as exactly that (no userinfo,
/// nothing after the port or the `]`).
fn host_of(authority: &str) -> Option<Cow<'_, str>> {
    let text = authority.trim();
    match plain_host(text) {
        Some(host) => Some(Cow::Borrowed(host)),
        None => parsed_host(text),
    }
}

/// The host of `text` when it is what clients send, a lowercase name or IPv4
/// address and maybe a port (`[a-z0-9.-]+(:[0-9]*)?`): read without building an
/// [`Authority`] (an allocation and a parse, at every request). [`parsed_host`]
/// gives the same host for every such text (tested); anything else is its to read.
fn plain_host(text: &str) -> Option<&str> {
    let (host, port) = text.split_once(':').unwrap_or((text, ""));
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && port.bytes().all(|b| b.is_ascii_digit());
    plain.then_some(host)
}

/// [`host_of`] for any text, parsed as an [`Authority`].
fn parsed_host(text: &str) -> Option<Cow<'_, str>> {
    if text.is_empty() || text.contains('@') {
        return None;
    }
    let parsed: Authority = text.parse().ok()?;
    if parsed.as_str() != text {
        return None;
    }
    // The port, if any, is all digits (the parser checked it) and the host is all
    // that comes before it.
    let (host, rest) = text.split_at(parsed.host().len());
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    if !(rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some(host)
}

fn host_allowed(http: &HttpConfig, host: Option<&str>) -> bool {
    host.is_some_and(|host| http.allowed_hosts.iter().any(|h| h == "*" || h == host))
}

/// The one value of header `name`: `Err` when it is sent twice (a proxy and emcee
/// could read different ones) or is not visible ASCII.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("more than one {name} header"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header is not visible ASCII"))
}

/// Check `Host` and `Origin`; `Err` names what was refused.
pub fn check_host_and_origin(http: &HttpConfig, headers: &HeaderMap) -> Result<(), String> {
    check_hosts(http, headers, false)
}

/// [`check_host_and_origin`] for the operations routes (`/health`, `/metrics`):
/// a `Host` that is an IP literal (`10.0.0.5:8080`, `[fd00::5]`) is accepted too, so
/// that orchestrators and scrapers that probe by address need no allowlist entry.
/// DNS rebinding cannot produce one: the attack needs a name of the attacker's
/// resolving to this server, and the browser sends that name; a page whose origin is
/// an IP literal routed here is this server's own origin. `Origin` is checked as on
/// `/mcp`.
pub(crate) fn check_ops_host_and_origin(
    http: &HttpConfig,
    headers: &HeaderMap,
) -> Result<(), String> {
    check_hosts(http, headers, true)
}

fn is_ip_literal(host: &str) -> bool {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse::<std::net::IpAddr>().is_ok()
}

fn check_hosts(http: &HttpConfig, headers: &HeaderMap, ip_literals: bool) -> Result<(), String> {
    let host = single(headers, &header::HOST)?.unwrap_or("");
    let parsed = host_of(host);
    let literal = ip_literals && parsed.as_deref().is_some_and(is_ip_literal);
    if !literal && !host_allowed(http, parsed.as_deref()) {
        return Err(format!("host not allowed: {host:?}"));
    }
    if let Some(origin) = single(headers, &header::ORIGIN)? {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if http.allowed_origins.contains(&origin) {
            return Ok(());
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .ok_or_else(|| format!("origin not allowed: {origin:?}"))?;
        if !host_allowed(http, host_of(authority).as_deref()) {
            return Err(format!("origin not allowed: {origin:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_plain_host_is_read_as_the_authority_parse_reads_it() {
        let plain = [
            "localhost",
            "localhost:8080",
            "localhost:",
            "127.0.0.1",
            "127.0.0.1:18180",
            "mcp.example.com:443",
            "a-b.c-d",
            ".",
            "-",
            "..:1",
            "0",
            "host:99999999",
        ];
        for text in plain {
            assert!(plain_host(text).is_some(), "{text:?} is plain");
            assert_eq!(plain_host(text), parsed_host(text).as_deref(), "{text:?}");
            assert_eq!(host_of(text).as_deref(), plain_host(text));
        }
        // Not plain: left to the parse (same answers as before the shortcut).
        for text in [
            "",
            ":80",
            "Localhost",
            "[::1]:80",
            "a:b:c",
            "user@host",
            "host:8o",
            "host/path",
            "h_st",
            "host%20",
        ] {
            assert!(plain_host(text).is_none(), "{text:?} is not plain");
            assert_eq!(host_of(text), parsed_host(text), "{text:?}");
        }
        assert_eq!(host_of("Localhost:80").as_deref(), Some("localhost"));
        assert_eq!(host_of("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_of("a:b:c"), None);
        assert_eq!(host_of(" localhost:80 ").as_deref(), Some("localhost"));
    }

    #[test]
    fn a_repeated_host_or_origin_is_refused() {
        let http = HttpConfig::default();
        let mut h = headers(&[("host", "localhost"), ("origin", "http://localhost")]);
        h.append(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(check_host_and_origin(&http, &h).is_err());
        let mut h = headers(&[("host", "localhost")]);
        h.append(header::HOST, HeaderValue::from_static("evil.example"));
        assert!(check_host_and_origin(&http, &h).is_err());
    }

    #[test]
    fn ops_routes_also_take_an_ip_literal_host_but_no_foreign_name_or_origin() {
        let http = HttpConfig::default();
        let ok = |pairs: &[(&'static str, &str)]| {
            check_ops_host_and_origin(&http, &headers(pairs)).is_ok()
        };
        assert!(ok(&[("host", "localhost:8080")]));
        assert!(ok(&[("host", "10.1.2.3:9090")]));
        assert!(ok(&[("host", "[fd00::5]:9090")]));
        assert!(ok(&[("host", "192.168.0.7")]));
        assert!(!ok(&[("host", "evil.example")]));
        assert!(!ok(&[("host", "10.1.2.3.evil.example")]));
        assert!(!ok(&[("host", "10.1.2.3@evil.example")]));
        assert!(!ok(&[
            ("host", "10.1.2.3"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "10.1.2.3"), ("origin", "http://10.1.2.3")]));
        assert!(!ok(&[]), "no Host at all");
        // The MCP endpoint keeps its allowlist alone.
        assert!(check_host_and_origin(&http, &headers(&[("host", "10.1.2.3")])).is_err());
    }

    #[test]
    fn host_and_origin_allowlist() {
        let http = HttpConfig::default();
        let ok =
            |pairs: &[(&'static str, &str)]| check_host_and_origin(&http, &headers(pairs)).is_ok();
        assert!(ok(&[("host", "localhost:8080")]));
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://localhost:3000")
        ]));
        assert!(ok(&[("host", "[::1]:8080"), ("origin", "https://[::1]")]));
        assert!(!ok(&[("host", "evil.example:8080")]));
        assert!(!ok(&[
            ("host", "localhost:8080"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "localhost:8080"), ("origin", "null")]));
        assert!(!ok(&[]), "no Host at all");
        // Nothing may follow the host: these must not pass as localhost names.
        assert!(!ok(&[("host", "[::1]evil.com")]));
        assert!(!ok(&[("host", "localhost@evil.com")]));
        assert!(!ok(&[("host", "localhost:80x")]));
        assert!(!ok(&[("host", "localhost/x")]));
        assert!(!ok(&[
            ("host", "localhost"),
            ("origin", "http://[::1]@evil.com")
        ]));
        assert!(!ok(&[
            ("host", "localhost"),
            ("origin", "http://localhost@evil.com")
        ]));
        assert!(!ok(&[
            ("host", "localhost"),
            ("origin", "http://[::1]evil.com")
        ]));
        assert!(ok(&[
            ("host", "LOCALHOST:8080"),
            ("origin", "http://[::1]:3000")
        ]));
        let any = HttpConfig {
            allowed_hosts: vec!["*".into()],
            ..HttpConfig::default()
        };
        assert!(check_host_and_origin(&any, &headers(&[("host", "mcp.example.com")])).is_ok());
        let exact = HttpConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            ..HttpConfig::default()
        };
        assert!(check_host_and_origin(
            &exact,
            &headers(&[
                ("host", "localhost"),
                ("origin", "https://app.example.com/")
            ])
        )
        .is_ok());
    }

    #[test]
    fn a_host_is_compared_in_lowercase_whatever_case_it_is_sent_in() {
        let http = HttpConfig::default();
        let ok =
            |pairs: &[(&'static str, &str)]| check_host_and_origin(&http, &headers(pairs)).is_ok();
        assert!(ok(&[("host", "LocalHost:8080")]));
        assert!(ok(&[("host", "LOCALHOST")]));
        assert!(ok(&[
            ("host", "localhost"),
            ("origin", "HTTP://LOCALHOST:3000")
        ]));
        assert!(!ok(&[("host", "LOCALHOST.evil.example")]));
        assert_eq!(host_of("Example.COM:80").as_deref(), Some("example.com"));
        assert!(matches!(
            host_of("example.com:80"),
            Some(Cow::Borrowed("example.com"))
        ));
    }
}
