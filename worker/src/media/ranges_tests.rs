use super::*;

fn kinds_of(addr: &str) -> Vec<Kind> {
    kinds(addr.parse().expect("test address parses")).collect()
}

fn kind_of(addr: &str) -> Option<Kind> {
    match kinds_of(addr)[..] {
        [] => None,
        [kind] => Some(kind),
        ref more => panic!("{addr} falls in {more:?}"),
    }
}

#[test]
fn every_table_entry_is_a_network_address() {
    for range in V4_RANGES {
        let host_bits = 32 - range.prefix;
        assert_eq!(range.network & ((1u128 << host_bits) - 1), 0, "{range:?}");
    }
    for range in V6_RANGES {
        let host_bits = 128 - range.prefix;
        let mask = 1u128
            .checked_shl(host_bits)
            .map_or(u128::MAX, |bit| bit - 1);
        assert_eq!(range.network & mask, 0, "{range:?}");
    }
}

#[test]
fn public_addresses_fall_in_no_range() {
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "168.63.129.17",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.255",
        "192.0.3.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.101.0",
        "203.0.112.255",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:db9::1",
        "2001:3::1",
        "3fff:1000::1",
        "64:ff9b::808:808",
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "2002:808:808::1",
    ] {
        assert_eq!(kind_of(addr), None, "{addr}");
    }
}

#[test]
fn ranges_the_switches_govern_are_told_apart() {
    for (addr, kind) in [
        ("127.0.0.1", Kind::Loopback),
        ("127.255.255.254", Kind::Loopback),
        ("::1", Kind::Loopback),
        ("10.0.0.1", Kind::Private),
        ("172.16.0.1", Kind::Private),
        ("172.31.255.255", Kind::Private),
        ("192.168.1.1", Kind::Private),
        ("fec0::1", Kind::Private),
        ("100.64.0.1", Kind::Shared),
        ("100.127.255.255", Kind::Shared),
        ("169.254.1.1", Kind::LinkLocal),
        ("fe80::1", Kind::LinkLocal),
        ("febf::1", Kind::LinkLocal),
        ("fc00::1", Kind::UniqueLocal),
        ("fdff:ffff::1", Kind::UniqueLocal),
    ] {
        assert_eq!(kind_of(addr), Some(kind), "{addr}");
        assert_ne!(kind.switch(), Switch::Never, "{addr}");
    }
}

#[test]
fn ranges_no_switch_opens_are_refused_as_what_they_are() {
    for (addr, kind) in [
        ("0.0.0.0", Kind::Unspecified),
        ("0.255.255.255", Kind::Unspecified),
        ("::", Kind::Unspecified),
        ("169.254.169.254", Kind::CloudMetadata),
        ("169.254.170.2", Kind::CloudMetadata),
        ("169.254.170.23", Kind::CloudMetadata),
        ("169.254.0.23", Kind::CloudMetadata),
        ("169.254.42.42", Kind::CloudMetadata),
        ("100.100.100.200", Kind::CloudMetadata),
        ("192.0.0.192", Kind::CloudMetadata),
        ("168.63.129.16", Kind::CloudMetadata),
        ("fd00:ec2::254", Kind::CloudMetadata),
        ("fd00:ec2::23", Kind::CloudMetadata),
        ("fd20:ce::254", Kind::CloudMetadata),
        ("fe80::a9fe:a9fe", Kind::CloudMetadata),
        ("192.0.2.1", Kind::Documentation),
        ("198.51.100.7", Kind::Documentation),
        ("203.0.113.255", Kind::Documentation),
        ("2001:db8::1", Kind::Documentation),
        ("3fff::1", Kind::Documentation),
        ("3fff:fff::1", Kind::Documentation),
        ("198.18.0.1", Kind::Benchmarking),
        ("198.19.255.255", Kind::Benchmarking),
        ("2001:2::1", Kind::Benchmarking),
        ("224.0.0.1", Kind::Multicast),
        ("239.255.255.255", Kind::Multicast),
        ("ff02::1", Kind::Multicast),
        ("240.0.0.1", Kind::Reserved),
        ("254.255.255.255", Kind::Reserved),
        ("192.0.0.8", Kind::Reserved),
        ("192.88.99.1", Kind::Reserved),
        ("100::1", Kind::Reserved),
        ("::1:0:0:1", Kind::Reserved),
        ("64:ff9b:2::1", Kind::Reserved),
        ("255.255.255.255", Kind::Broadcast),
        ("64:ff9b:1::a00:1", Kind::LocalNat64),
        ("64:ff9b:1:ffff::1", Kind::LocalNat64),
    ] {
        assert_eq!(kind_of(addr), Some(kind), "{addr}");
        assert_eq!(kind.switch(), Switch::Never, "{addr}");
    }
}

#[test]
fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
    for (addr, kind) in [
        ("::ffff:127.0.0.1", Kind::Loopback),
        ("::ffff:10.1.2.3", Kind::Private),
        ("::ffff:169.254.169.254", Kind::CloudMetadata),
        ("::ffff:0.0.0.0", Kind::Unspecified),
        ("::127.0.0.1", Kind::Loopback),
        ("::169.254.169.254", Kind::CloudMetadata),
        ("::0.0.0.2", Kind::Unspecified),
        ("64:ff9b::7f00:1", Kind::Loopback),
        ("64:ff9b::a00:1", Kind::Private),
        ("64:ff9b::a9fe:a9fe", Kind::CloudMetadata),
        // 6to4 carries the IPv4 address in bits 16 to 48.
        ("2002:7f00:1::", Kind::Loopback),
        ("2002:a9fe:a9fe:1::1", Kind::CloudMetadata),
        ("2002:c000:0201::1", Kind::Documentation),
    ] {
        assert_eq!(kind_of(addr), Some(kind), "{addr}");
    }
}

#[test]
fn teredo_is_judged_by_its_server_and_by_its_client() {
    // Client 127.0.0.1 obfuscated (each bit flipped: 80ff:fffe); server public.
    assert_eq!(kinds_of("2001:0:808:808::80ff:fffe"), [Kind::Loopback]);
    // Server at the metadata address, client public (8.8.4.4 flipped: f7f7:fbfb).
    assert_eq!(
        kinds_of("2001:0:a9fe:a9fe::f7f7:fbfb"),
        [Kind::CloudMetadata]
    );
    // Both: a private server and a metadata client (169.254.169.254 flipped: 5601:5601).
    assert_eq!(
        kinds_of("2001:0:a00:1::5601:5601"),
        [Kind::Private, Kind::CloudMetadata]
    );
    // Both public: a public Teredo address.
    assert_eq!(kinds_of("2001:0:808:808::f7f7:fbfb"), []);
}

#[test]
fn localhost_and_names_under_it_are_loopback_with_or_without_the_root_dot() {
    for name in [
        "localhost",
        "localhost.",
        "LocalHost",
        "media.localhost",
        "a.b.localhost.",
    ] {
        assert!(is_localhost(name), "{name}");
    }
    for name in [
        "localhost.example.com",
        "notlocalhost",
        "localhost..",
        "example.com",
    ] {
        assert!(!is_localhost(name), "{name}");
    }
}
