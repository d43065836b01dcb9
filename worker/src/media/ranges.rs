//! Which address ranges are not the public internet, and which setting, if any, lets a probe
//! reach them. Some are never probed whatever the settings say: nothing that serves a
//! customer's recording lives at a cloud metadata address or in a documentation range, and
//! those are where a hostile URL would go.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range an address is not public for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Loopback,
    Private,
    /// Carrier-grade NAT (100.64.0.0/10): an operator's own network.
    Shared,
    LinkLocal,
    UniqueLocal,
    Unspecified,
    CloudMetadata,
    Documentation,
    Benchmarking,
    Multicast,
    Broadcast,
    Reserved,
    /// 64:ff9b:1::/48: NAT64 inside one network, so whatever it reaches is that network's.
    LocalNat64,
}

/// The setting that may let a probe reach a kind of address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Switch {
    AllowLoopback,
    AllowPrivate,
    /// None does.
    Never,
}

impl Kind {
    pub(super) fn switch(self) -> Switch {
        match self {
            Kind::Loopback => Switch::AllowLoopback,
            Kind::Private | Kind::Shared | Kind::LinkLocal | Kind::UniqueLocal => {
                Switch::AllowPrivate
            }
            Kind::Unspecified
            | Kind::CloudMetadata
            | Kind::Documentation
            | Kind::Benchmarking
            | Kind::Multicast
            | Kind::Broadcast
            | Kind::Reserved
            | Kind::LocalNat64 => Switch::Never,
        }
    }

    /// With its article, to be read in a sentence.
    pub(super) fn described(self) -> &'static str {
        match self {
            Kind::Loopback => "a loopback address",
            Kind::Private => "a private address",
            Kind::Shared => "a carrier-grade NAT address",
            Kind::LinkLocal => "a link-local address",
            Kind::UniqueLocal => "a unique local address",
            Kind::Unspecified => "an unspecified address",
            Kind::CloudMetadata => "a cloud metadata address",
            Kind::Documentation => "a documentation address",
            Kind::Benchmarking => "a benchmarking address",
            Kind::Multicast => "a multicast address",
            Kind::Broadcast => "the broadcast address",
            Kind::Reserved => "a reserved address",
            Kind::LocalNat64 => "a local-use NAT64 address",
        }
    }
}

/// The ranges `addr` falls in. An IPv6 address that carries an IPv4 one reaches that IPv4
/// host, so it is judged by it: both of Teredo's (server and client). Empty when public.
pub(super) fn kinds(addr: IpAddr) -> impl Iterator<Item = Kind> {
    let [first, second] = match addr {
        IpAddr::V4(v4) => [kind_v4(v4), None],
        IpAddr::V6(v6) => kinds_v6(v6),
    };
    first.into_iter().chain(second)
}

fn kind_v4(addr: Ipv4Addr) -> Option<Kind> {
    most_specific(V4_RANGES, addr.to_bits().into())
}

fn kinds_v6(addr: Ipv6Addr) -> [Option<Kind>; 2] {
    match embedded_v4(addr) {
        Embedded::None => [most_specific(V6_RANGES, addr.to_bits()), None],
        Embedded::One(v4) => [kind_v4(v4), None],
        Embedded::Teredo { server, client } => [kind_v4(server), kind_v4(client)],
    }
}

enum Embedded {
    None,
    One(Ipv4Addr),
    Teredo { server: Ipv4Addr, client: Ipv4Addr },
}

fn embedded_v4(addr: Ipv6Addr) -> Embedded {
    // `::` and `::1` sit inside the IPv4-compatible prefix and mean themselves.
    if addr.is_unspecified() || addr.is_loopback() {
        return Embedded::None;
    }
    let bits = addr.to_bits();
    let v4 = |shift: u32| Ipv4Addr::from_bits((bits >> shift) as u32);
    let s = addr.segments();
    match s {
        // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            Embedded::One(v4(0))
        }
        // 6to4: 2002:aabb:ccdd::/48 routes to a.b.c.d.
        [0x2002, ..] => Embedded::One(v4(80)),
        // Teredo: 2001:0:<server>:<flags>:<port>:<client XOR ffff:ffff>.
        [0x2001, 0, ..] => Embedded::Teredo {
            server: v4(64),
            client: Ipv4Addr::from_bits(!(bits as u32)),
        },
        _ => Embedded::None,
    }
}

#[derive(Debug)]
struct Range<const BITS: usize> {
    network: u128,
    prefix: u32,
    kind: Kind,
}

type V4Range = Range<32>;
type V6Range = Range<128>;

impl<const BITS: usize> Range<BITS> {
    const fn new(network: u128, prefix: u32, kind: Kind) -> Self {
        Self {
            network,
            prefix,
            kind,
        }
    }

    fn contains(&self, bits: u128) -> bool {
        let host_bits = BITS as u32 - self.prefix;
        bits.checked_shr(host_bits).unwrap_or(0) == self.network.checked_shr(host_bits).unwrap_or(0)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u32, kind: Kind) -> V4Range {
    Range::new(Ipv4Addr::new(a, b, c, d).to_bits() as u128, prefix, kind)
}

const fn v6(segments: [u16; 8], prefix: u32, kind: Kind) -> V6Range {
    let [a, b, c, d, e, f, g, h] = segments;
    Range::new(
        Ipv6Addr::new(a, b, c, d, e, f, g, h).to_bits(),
        prefix,
        kind,
    )
}

/// The longest prefix wins, so a metadata address inside link-local space is refused as
/// metadata, whatever `allow_private` says.
fn most_specific<const BITS: usize>(table: &[Range<BITS>], bits: u128) -> Option<Kind> {
    table
        .iter()
        .filter(|range| range.contains(bits))
        .max_by_key(|range| range.prefix)
        .map(|range| range.kind)
}

const V4_RANGES: &[V4Range] = &[
    v4(0, 0, 0, 0, 8, Kind::Unspecified),
    v4(10, 0, 0, 0, 8, Kind::Private),
    v4(100, 64, 0, 0, 10, Kind::Shared),
    v4(127, 0, 0, 0, 8, Kind::Loopback),
    v4(169, 254, 0, 0, 16, Kind::LinkLocal),
    v4(172, 16, 0, 0, 12, Kind::Private),
    // IETF protocol assignments: none serves content.
    v4(192, 0, 0, 0, 24, Kind::Reserved),
    v4(192, 0, 2, 0, 24, Kind::Documentation),
    // The deprecated 6to4 relay anycast.
    v4(192, 88, 99, 0, 24, Kind::Reserved),
    v4(192, 168, 0, 0, 16, Kind::Private),
    v4(198, 18, 0, 0, 15, Kind::Benchmarking),
    v4(198, 51, 100, 0, 24, Kind::Documentation),
    v4(203, 0, 113, 0, 24, Kind::Documentation),
    v4(224, 0, 0, 0, 4, Kind::Multicast),
    v4(240, 0, 0, 0, 4, Kind::Reserved),
    v4(255, 255, 255, 255, 32, Kind::Broadcast),
    // AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack, Hetzner and most others.
    v4(169, 254, 169, 254, 32, Kind::CloudMetadata),
    // AWS ECS task metadata and credentials.
    v4(169, 254, 170, 2, 32, Kind::CloudMetadata),
    // AWS EKS Pod Identity agent.
    v4(169, 254, 170, 23, 32, Kind::CloudMetadata),
    // Tencent Cloud.
    v4(169, 254, 0, 23, 32, Kind::CloudMetadata),
    // Scaleway.
    v4(169, 254, 42, 42, 32, Kind::CloudMetadata),
    // Alibaba Cloud.
    v4(100, 100, 100, 200, 32, Kind::CloudMetadata),
    // Oracle Cloud.
    v4(192, 0, 0, 192, 32, Kind::CloudMetadata),
    // Azure's wire server: a public address only the VM's host answers.
    v4(168, 63, 129, 16, 32, Kind::CloudMetadata),
];

const V6_RANGES: &[V6Range] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Kind::Unspecified),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Kind::Loopback),
    // Reserved by the IETF, apart from the forms above and the IPv4-carrying ones decoded
    // before this table is read.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 8, Kind::Reserved),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Kind::LocalNat64),
    // The discard-only prefix.
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Kind::Reserved),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Kind::Benchmarking),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Kind::Documentation),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Kind::Documentation),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Kind::UniqueLocal),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Kind::LinkLocal),
    // Deprecated site-local: private in effect where it is still configured.
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Kind::Private),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Kind::Multicast),
    // AWS instance metadata.
    v6(
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
        128,
        Kind::CloudMetadata,
    ),
    // AWS EKS Pod Identity agent.
    v6(
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23],
        128,
        Kind::CloudMetadata,
    ),
    // GCP.
    v6(
        [0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254],
        128,
        Kind::CloudMetadata,
    ),
    // OpenStack.
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe],
        128,
        Kind::CloudMetadata,
    ),
];

/// `localhost` and every name under it are loopback by definition (RFC 6761), whatever a
/// resolver would answer, so they are judged before any lookup.
pub(super) fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
#[path = "ranges_tests.rs"]
mod tests;
