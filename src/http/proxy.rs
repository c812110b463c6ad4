//! Trusted reverse proxies: `Forwarded` (RFC 7239), or X-Forwarded-For,
//! -Proto, -Host and -Port, from a peer listed in `--trusted-proxy` describe
//! the real client; from anyone else they are ignored (a client could claim
//! any address).

use std::net::{IpAddr, SocketAddr};

use forwarded_header_value::{ForwardedHeaderValue, Protocol};
use http::HeaderMap;

use crate::config::TrustedProxy;

/// What a trusted proxy told us about the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub client: Option<IpAddr>,
    /// From X-Forwarded-Proto: `https` or not.
    pub https: Option<bool>,
    pub host: Option<String>,
    pub port: Option<u16>,
}

fn trusted(ip: IpAddr, list: &[TrustedProxy]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    list.iter()
        .any(|t| matches!(t, TrustedProxy::Net(n) if n.contains(&ip)))
}

/// The forwarded view of the request, when its peer (`None`: a Unix socket)
/// is a trusted proxy and sent any X-Forwarded-* header.
pub fn forwarded(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    list: &[TrustedProxy],
) -> Option<Forwarded> {
    if list.is_empty() {
        return None;
    }
    let peer_trusted = match peer {
        Some(p) => trusted(p.ip(), list),
        None => list.contains(&TrustedProxy::Unix),
    };
    if !peer_trusted {
        return None;
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut f = Forwarded::default();
    // The standard Forwarded header (RFC 7239) if the proxy sent one, else
    // the X-Forwarded-* family.
    let standard: Option<String> = {
        let lines: Vec<&str> = headers
            .get_all(http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!lines.is_empty()).then(|| lines.join(", "))
    };
    let chain: Vec<IpAddr> = match standard
        .as_deref()
        .map(ForwardedHeaderValue::from_forwarded)
    {
        Some(Ok(value)) => {
            // The stanza the proxy nearest the client wrote describes the
            // original request's scheme and host.
            let first = value.remotest();
            f.https = first.forwarded_proto.map(|p| p == Protocol::Https);
            f.host = first.forwarded_host.clone();
            value.iter().filter_map(|s| s.forwarded_for_ip()).collect()
        }
        Some(Err(_)) => Vec::new(),
        None => {
            // Proto, host and port: the value the proxy closest to the client
            // set, which is the first of a comma-separated list.
            let first = |name: &str| {
                text(name)
                    .and_then(|v| v.split(',').next())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            f.https = first("x-forwarded-proto").map(|p| p.eq_ignore_ascii_case("https"));
            f.host = first("x-forwarded-host").map(str::to_string);
            f.port = first("x-forwarded-port").and_then(|p| p.parse().ok());
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| parse_addr(a.trim()))
                .collect()
        }
    };
    // Every proxy appends the address it got the request from; walk from
    // the right past our own proxies: the first address we do not trust is
    // the client. (All trusted: the leftmost one.)
    f.client = chain
        .iter()
        .rev()
        .find(|a| !trusted(**a, list))
        .or(chain.first())
        .copied();
    (f != Forwarded::default()).then_some(f)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn list(items: &[&str]) -> Vec<TrustedProxy> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxy: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let l = list(&["10.0.0.0/8"]);
        let f = forwarded(&h, Some(proxy), &l).unwrap();
        assert_eq!(f.client, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(f.https, Some(true));
        assert_eq!(forwarded(&h, Some(stranger), &l), None);
        assert_eq!(
            forwarded(&h, None, &l),
            None,
            "a Unix socket peer needs 'unix' in the list"
        );
        assert!(forwarded(&h, None, &list(&["unix"])).is_some());
        assert_eq!(forwarded(&h, Some(proxy), &[]), None);
    }

    #[test]
    fn rfc_7239_forwarded() {
        let h = headers(&[(
            "forwarded",
            "for=1.1.1.1, for=203.0.113.7;proto=https;host=app.example.com, for=\"[2001:db8::5]:4711\"",
        )]);
        let f = forwarded(
            &h,
            Some("10.0.0.2:1".parse().unwrap()),
            &list(&["10.0.0.0/8", "2001:db8::/32"]),
        )
        .unwrap();
        assert_eq!(f.client, Some("203.0.113.7".parse().unwrap()));
        // proto/host come from the first stanza, which has none here.
        assert_eq!(f.https, None);
        let h = headers(&[(
            "forwarded",
            "for=203.0.113.7;proto=https;host=app.example.com",
        )]);
        let f = forwarded(&h, None, &list(&["unix"])).unwrap();
        assert_eq!(f.https, Some(true));
        assert_eq!(f.host.as_deref(), Some("app.example.com"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        // A client spoofs 1.1.1.1; its real address 203.0.113.7 was appended
        // by our edge proxy 10.0.0.3, then our inner proxy 10.0.0.2 connected.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.3")]);
        let f = forwarded(
            &h,
            Some("10.0.0.2:1".parse().unwrap()),
            &list(&["10.0.0.0/8"]),
        )
        .unwrap();
        assert_eq!(f.client, Some("203.0.113.7".parse().unwrap()));
        let h = headers(&[
            ("x-forwarded-for", "[2001:db8::1]:443"),
            ("x-forwarded-host", "example.com, inner"),
        ]);
        let f = forwarded(
            &h,
            Some("127.0.0.1:1".parse().unwrap()),
            &list(&["127.0.0.1"]),
        )
        .unwrap();
        assert_eq!(f.client, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.host.as_deref(), Some("example.com"));
    }
}
