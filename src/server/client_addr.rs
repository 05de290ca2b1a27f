//! The client address a request is judged by (`client_cidrs`, the
//! auth-failure budget, the audit trail): the socket peer, unless the peer
//! is a trusted proxy (`server.trusted_proxies`); then the right-most
//! `X-Forwarded-For` address that is not itself trusted (every proxy
//! appends the address it received from, so addresses right of the first
//! untrusted one were written by proxies we trust, and everything left of
//! it may have been written by the client). If every address is trusted,
//! the left-most. The header of an untrusted peer is never read.

use crate::error::GatewayError;
use http::HeaderMap;
use loggate_model::Cidr;
use std::net::IpAddr;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address of the client behind `peer`. An `X-Forwarded-For` from a
/// trusted peer that does not parse is 400: guessing would let a broken
/// proxy chain pick any address.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> Result<IpAddr, GatewayError> {
    let is_trusted = |a: IpAddr| trusted.iter().any(|c| c.contains(a));
    if trusted.is_empty() || !is_trusted(peer) {
        return Ok(peer);
    }
    let bad =
        || GatewayError::bad_request(Some(X_FORWARDED_FOR.to_owned()), "X-Forwarded-For is not a list of IP addresses");
    let mut hops = Vec::new();
    // Several header lines are one list, in order.
    for value in headers.get_all(X_FORWARDED_FOR) {
        let value = value.to_str().map_err(|_| bad())?;
        for hop in value.split(',') {
            hops.push(parse_hop(hop.trim()).ok_or_else(bad)?);
        }
    }
    Ok(hops.iter().rev().copied().find(|&a| !is_trusted(a)).or(hops.first().copied()).unwrap_or(peer))
}

/// One list element: an address, IPv6 optionally in brackets (RFC 7239
/// style, which some proxies write here too).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(hop);
    hop.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let got = resolve(ip("203.0.113.9"), &headers(&["10.1.1.1"]), &cidrs(&["10.0.0.0/8"])).unwrap();
        assert_eq!(got, ip("203.0.113.9"));
        let got = resolve(ip("10.0.0.1"), &headers(&["192.0.2.1"]), &[]).unwrap();
        assert_eq!(got, ip("10.0.0.1"), "no trusted proxies: the header is never read");
    }

    #[test]
    fn a_trusted_peer_yields_the_right_most_untrusted_hop() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let h = headers(&["198.51.100.7, 192.0.2.1", "10.0.0.5"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &trusted).unwrap(), ip("192.0.2.1"));
        let all_trusted = headers(&["10.9.9.9, 10.0.0.5"]);
        assert_eq!(resolve(ip("10.0.0.1"), &all_trusted, &trusted).unwrap(), ip("10.9.9.9"));
        assert_eq!(resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted).unwrap(), ip("10.0.0.1"));
        let v6 = headers(&["[2001:db8::1]"]);
        assert_eq!(resolve(ip("10.0.0.1"), &v6, &trusted).unwrap(), ip("2001:db8::1"));
    }

    #[test]
    fn garbage_from_a_trusted_peer_is_refused() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        for bad in ["banana", "192.0.2.1,", "192.0.2.1:8080", ""] {
            let e = resolve(ip("10.0.0.1"), &headers(&[bad]), &trusted).unwrap_err();
            assert_eq!(e.code(), "bad_request", "{bad}");
        }
    }
}
