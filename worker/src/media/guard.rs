//! Which addresses and ports a probe may connect to. Media URLs come from customers, so an
//! unguarded probe would let them reach our own network (cloud metadata, internal services).
//! What a refusal records names the rule, never the address: a customer must not learn what
//! our names resolve to.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::config::MediaSettings;
use shared::port_ranges::PortRanges;
use url::{Host, Url};

use super::ranges::{self, Kind, Switch};

/// Where the refused address or port was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// In the media URL itself.
    Url,
    /// In a redirect's `Location`.
    Redirect,
    /// Among the addresses a host name resolved to.
    Resolved,
}

#[derive(Debug, Clone)]
enum Rule {
    Address(Kind),
    Port { port: u16, allowed: Arc<PortRanges> },
}

#[derive(Debug, Clone)]
pub(super) struct Blocked {
    seen: Seen,
    rule: Rule,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Address(kind) => {
                let lead = match self.seen {
                    Seen::Url => "the recording URL's host is",
                    Seen::Redirect => "the recording URL redirects to",
                    Seen::Resolved => "the recording host resolves to",
                };
                let verdict = match kind.switch() {
                    Switch::Never => "which is never probed",
                    Switch::AllowLoopback => "which is probed only if media.allow_loopback is on",
                    Switch::AllowPrivate => "which is probed only if media.allow_private is on",
                };
                write!(
                    f,
                    "{lead} {}, {verdict}: serve the recording from a public address",
                    kind.described()
                )
            }
            Rule::Port { port, allowed } => {
                match self.seen {
                    Seen::Redirect => write!(f, "the recording URL redirects to port {port}")?,
                    Seen::Url | Seen::Resolved => write!(f, "the recording URL's port is {port}")?,
                }
                write!(
                    f,
                    ", not in media.allowed_ports ({allowed}): serve the recording on one of those"
                )
            }
        }
    }
}

impl std::error::Error for Blocked {}

#[derive(Debug, Clone)]
pub(super) struct Guard {
    allow_loopback: bool,
    allow_private: bool,
    ports: Arc<PortRanges>,
}

impl Guard {
    pub(super) fn new(settings: &MediaSettings) -> Self {
        Self {
            allow_loopback: settings.allow_loopback,
            allow_private: settings.allow_private,
            ports: Arc::new(settings.allowed_ports.clone()),
        }
    }

    fn allows(&self, kind: Kind) -> bool {
        match kind.switch() {
            Switch::AllowLoopback => self.allow_loopback,
            Switch::AllowPrivate => self.allow_private,
            Switch::Never => false,
        }
    }

    fn check(&self, addr: IpAddr, seen: Seen) -> Result<(), Blocked> {
        match ranges::kinds(addr).find(|kind| !self.allows(*kind)) {
            None => Ok(()),
            Some(kind) => Err(Blocked {
                seen,
                rule: Rule::Address(kind),
            }),
        }
    }

    /// The media URL, before any request.
    pub(super) fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        self.check_target(url, Seen::Url)
    }

    /// Where a redirect leads, before following it.
    pub(super) fn check_redirect(&self, url: &Url) -> Result<(), Blocked> {
        self.check_target(url, Seen::Redirect)
    }

    /// IP-literal hosts never reach the resolver, and `localhost` must not depend on what
    /// a resolver answers: both are judged here. Other names are left to [`GuardedResolver`].
    fn check_target(&self, url: &Url, seen: Seen) -> Result<(), Blocked> {
        match url.host() {
            Some(Host::Ipv4(addr)) => self.check(addr.into(), seen)?,
            Some(Host::Ipv6(addr)) => self.check(addr.into(), seen)?,
            Some(Host::Domain(name)) => self.check_name(name, seen)?,
            None => {}
        }
        // Schemes without a known port are not http(s): reqwest refuses them itself.
        match url.port_or_known_default() {
            Some(port) if !self.ports.contains(port) => Err(Blocked {
                seen,
                rule: Rule::Port {
                    port,
                    allowed: Arc::clone(&self.ports),
                },
            }),
            _ => Ok(()),
        }
    }

    fn check_name(&self, name: &str, seen: Seen) -> Result<(), Blocked> {
        if ranges::is_localhost(name) && !self.allows(Kind::Loopback) {
            return Err(Blocked {
                seen,
                rule: Rule::Address(Kind::Loopback),
            });
        }
        Ok(())
    }
}

/// Resolves names and keeps only the addresses the guard allows. reqwest connects to exactly
/// what this returns, so a name cannot pass the check and then resolve elsewhere at connect
/// time (DNS rebinding).
pub(super) struct GuardedResolver(pub(super) Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            guard.check_name(&host, Seen::Resolved)?;
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| match guard.check(addr.ip(), Seen::Resolved) {
                    Ok(()) => true,
                    Err(refused) => {
                        // For the operator only: the stored reason never shows the address.
                        tracing::debug!(host, addr = %addr.ip(), %refused, "media address refused");
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
#[path = "guard_tests.rs"]
mod tests;
