//! Which addresses a probe may connect to. Media URLs come from customers, so an unguarded
//! probe would let them reach our own network (cloud metadata, internal services).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::config::MediaSettings;
use url::{Host, Url};

/// A non-public address range, named in the refusal so operators can see why a URL failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    Loopback,
    Unspecified,
    Private,
    Shared,
    LinkLocal,
    Benchmarking,
    Multicast,
    Reserved,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Loopback => "loopback",
            Range::Unspecified => "unspecified",
            Range::Private => "private",
            Range::Shared => "shared",
            Range::LinkLocal => "link-local",
            Range::Benchmarking => "benchmarking",
            Range::Multicast => "multicast",
            Range::Reserved => "reserved",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("blocked: {range} address {addr} not allowed")]
pub(super) struct Blocked {
    pub(super) addr: IpAddr,
    pub(super) range: Range,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Guard {
    allow_loopback: bool,
    allow_private: bool,
}

impl Guard {
    pub(super) fn new(settings: &MediaSettings) -> Self {
        Self {
            allow_loopback: settings.allow_loopback,
            allow_private: settings.allow_private,
        }
    }

    pub(super) fn check(self, addr: IpAddr) -> Result<(), Blocked> {
        let Some(range) = classify(addr) else {
            return Ok(());
        };
        let allowed = match range {
            Range::Loopback => self.allow_loopback,
            _ => self.allow_private,
        };
        if allowed {
            Ok(())
        } else {
            Err(Blocked { addr, range })
        }
    }

    /// IP-literal hosts never reach the resolver, so they must be checked before every
    /// request, redirect hops included. Names are left to [`GuardedResolver`].
    pub(super) fn check_url(self, url: &Url) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Ipv4(addr)) => self.check(addr.into()),
            Some(Host::Ipv6(addr)) => self.check(addr.into()),
            Some(Host::Domain(_)) | None => Ok(()),
        }
    }
}

fn classify(addr: IpAddr) -> Option<Range> {
    match addr {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(addr: Ipv4Addr) -> Option<Range> {
    match addr.octets() {
        [127, ..] => Some(Range::Loopback),
        [0, ..] => Some(Range::Unspecified),
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Some(Range::Private),
        [100, 64..=127, ..] => Some(Range::Shared),
        [169, 254, ..] => Some(Range::LinkLocal),
        [198, 18..=19, ..] => Some(Range::Benchmarking),
        [224..=239, ..] => Some(Range::Multicast),
        [240..=255, ..] => Some(Range::Reserved),
        _ => None,
    }
}

fn classify_v6(addr: Ipv6Addr) -> Option<Range> {
    // Both forms reach an IPv4 host, so they are only as safe as the address they embed.
    if let Some(v4) = addr.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = addr.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = addr.octets();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if addr.is_loopback() {
        Some(Range::Loopback)
    } else if addr.is_unspecified() {
        Some(Range::Unspecified)
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some(Range::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(Range::LinkLocal)
    } else if segments[0] & 0xff00 == 0xff00 {
        Some(Range::Multicast)
    } else {
        None
    }
}

/// Resolves names and keeps only the addresses the guard allows. reqwest connects to exactly
/// what this returns, so a name cannot pass the check and then resolve elsewhere at connect
/// time (DNS rebinding).
pub(super) struct GuardedResolver(pub(super) Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| match guard.check(addr.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        blocked.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            if !allowed.is_empty() {
                return Ok(Box::new(allowed.into_iter()) as Addrs);
            }
            Err(match blocked {
                Some(refused) => refused.into(),
                None => io::Error::new(io::ErrorKind::NotFound, "no addresses").into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Guard = Guard {
        allow_loopback: false,
        allow_private: false,
    };

    fn range_of(addr: &str) -> Option<Range> {
        classify(addr.parse().expect("test address parses"))
    }

    #[test]
    fn public_addresses_are_not_classified() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(range_of(addr), None, "{addr}");
        }
    }

    #[test]
    fn each_non_public_range_is_classified() {
        for (addr, range) in [
            ("127.0.0.1", Range::Loopback),
            ("127.255.255.254", Range::Loopback),
            ("::1", Range::Loopback),
            ("0.0.0.0", Range::Unspecified),
            ("0.255.255.255", Range::Unspecified),
            ("::", Range::Unspecified),
            ("10.0.0.1", Range::Private),
            ("172.16.0.1", Range::Private),
            ("172.31.255.255", Range::Private),
            ("192.168.1.1", Range::Private),
            ("fc00::1", Range::Private),
            ("fdff:ffff::1", Range::Private),
            ("100.64.0.1", Range::Shared),
            ("100.127.255.255", Range::Shared),
            ("169.254.169.254", Range::LinkLocal),
            ("fe80::1", Range::LinkLocal),
            ("febf::1", Range::LinkLocal),
            ("198.18.0.1", Range::Benchmarking),
            ("198.19.255.255", Range::Benchmarking),
            ("224.0.0.1", Range::Multicast),
            ("239.255.255.255", Range::Multicast),
            ("ff02::1", Range::Multicast),
            ("240.0.0.1", Range::Reserved),
            ("255.255.255.255", Range::Reserved),
        ] {
            assert_eq!(range_of(addr), Some(range), "{addr}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_as_the_ipv4_address() {
        assert_eq!(range_of("::ffff:127.0.0.1"), Some(Range::Loopback));
        assert_eq!(range_of("::ffff:10.1.2.3"), Some(Range::Private));
        assert_eq!(range_of("::ffff:169.254.169.254"), Some(Range::LinkLocal));
    }

    #[test]
    fn nat64_addresses_are_judged_by_the_embedded_ipv4_address() {
        assert_eq!(range_of("64:ff9b::7f00:1"), Some(Range::Loopback));
        assert_eq!(range_of("64:ff9b::a00:1"), Some(Range::Private));
        assert_eq!(range_of("64:ff9b::a9fe:a9fe"), Some(Range::LinkLocal));
    }

    #[test]
    fn loopback_and_private_are_allowed_separately() {
        let loopback_only = Guard {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(loopback_only.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(loopback_only.check("10.0.0.1".parse().unwrap()).is_err());

        let private_only = Guard {
            allow_loopback: false,
            allow_private: true,
        };
        assert!(private_only.check("::1".parse().unwrap()).is_err());
        assert!(private_only.check("192.168.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn refusal_names_the_range_and_the_address() {
        let refused = STRICT.check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "blocked: loopback address 127.0.0.1 not allowed"
        );
    }

    #[test]
    fn url_literals_are_checked_and_names_are_left_to_the_resolver() {
        let check = |url: &str| STRICT.check_url(&Url::parse(url).unwrap());
        assert!(check("http://10.0.0.1/x").is_err());
        assert!(check("http://[::ffff:10.0.0.1]/x").is_err());
        // The url crate normalises legacy IPv4 spellings, so they cannot sneak past.
        assert!(check("http://0x7f.1/x").is_err());
        assert!(check("https://8.8.8.8/x").is_ok());
        assert!(check("https://media.example.com/x").is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_loopback_is_allowed() {
        let name: Name = "localhost".parse().unwrap();
        let err = match GuardedResolver(STRICT).resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(err.is::<Blocked>(), "{err}");

        let allowing = GuardedResolver(Guard {
            allow_loopback: true,
            allow_private: false,
        });
        let addrs: Vec<_> = allowing
            .resolve("localhost".parse().unwrap())
            .await
            .expect("localhost resolves")
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|addr| addr.ip().is_loopback()));
    }
}
