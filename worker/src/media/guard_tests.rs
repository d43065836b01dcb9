use super::*;

fn guard(allow_loopback: bool, allow_private: bool, ports: &[&str]) -> Guard {
    Guard {
        allow_loopback,
        allow_private,
        ports: Arc::new(PortRanges::parse(ports).expect("test ports parse")),
    }
}

fn strict() -> Guard {
    guard(false, false, &["80", "443"])
}

fn lenient() -> Guard {
    guard(true, true, &["80", "443"])
}

fn url(text: &str) -> Url {
    Url::parse(text).expect("test url parses")
}

fn refusal(result: Result<(), Blocked>) -> String {
    result.expect_err("refused").to_string()
}

#[test]
fn loopback_and_private_are_allowed_separately() {
    let loopback_only = guard(true, false, &["80"]);
    assert!(loopback_only.check_url(&url("http://127.0.0.1/")).is_ok());
    assert!(loopback_only.check_url(&url("http://10.0.0.1/")).is_err());

    let private_only = guard(false, true, &["80"]);
    assert!(private_only.check_url(&url("http://[::1]/")).is_err());
    assert!(private_only.check_url(&url("http://192.168.0.1/")).is_ok());
    assert!(private_only.check_url(&url("http://100.64.0.1/")).is_ok());
    assert!(private_only.check_url(&url("http://[fd12::1]/")).is_ok());
}

#[test]
fn what_no_switch_opens_stays_refused_with_both_on() {
    for target in [
        "http://0.0.0.0/",
        "http://[::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://192.0.0.192/",
        "http://100.100.100.200/",
        "http://168.63.129.16/",
        "http://192.0.2.1/",
        "http://[2001:db8::1]/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:a9fe:a9fe::1]/",
    ] {
        assert!(lenient().check_url(&url(target)).is_err(), "{target}");
    }
}

#[test]
fn legacy_ipv4_spellings_are_judged_as_the_address_they_spell() {
    // The url crate reads them the way a browser (and reqwest) would.
    for target in [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://example.com@127.0.0.1/",
        "http://127.0.0.1#@example.com/",
    ] {
        assert_eq!(
            refusal(strict().check_url(&url(target))),
            "the recording URL's host is a loopback address, which is probed only if \
             media.allow_loopback is on: serve the recording from a public address",
            "{target}"
        );
    }
}

#[test]
fn localhost_names_are_loopback_before_any_lookup() {
    for target in [
        "http://localhost/",
        "http://localhost./",
        "http://media.localhost/",
        "http://media.localhost./",
    ] {
        assert!(strict().check_url(&url(target)).is_err(), "{target}");
        assert!(strict().check_redirect(&url(target)).is_err(), "{target}");
        assert!(lenient().check_url(&url(target)).is_ok(), "{target}");
    }
}

#[test]
fn public_literals_and_names_pass_to_the_resolver() {
    assert!(strict().check_url(&url("https://8.8.8.8/x")).is_ok());
    assert!(strict()
        .check_url(&url("https://media.example.com/x"))
        .is_ok());
    assert!(strict()
        .check_url(&url("http://[2606:4700::1111]/x"))
        .is_ok());
}

#[test]
fn a_refusal_names_the_rule_and_never_the_address() {
    let metadata = refusal(lenient().check_url(&url("http://[::ffff:a9fe:a9fe]/")));
    assert_eq!(
        metadata,
        "the recording URL's host is a cloud metadata address, which is never probed: \
         serve the recording from a public address"
    );

    let redirected = refusal(strict().check_redirect(&url("http://10.1.2.3/x.wav")));
    assert_eq!(
        redirected,
        "the recording URL redirects to a private address, which is probed only if \
         media.allow_private is on: serve the recording from a public address"
    );
    for reason in [metadata, redirected] {
        assert!(
            !reason.contains("169.254") && !reason.contains("a9fe") && !reason.contains("10.1"),
            "{reason}"
        );
    }
}

#[test]
fn ports_outside_the_allowed_list_are_refused_and_named() {
    let ports = guard(false, false, &["80", "443", "8000-8100"]);
    assert!(ports.check_url(&url("http://media.example.com/")).is_ok());
    assert!(ports.check_url(&url("https://media.example.com/")).is_ok());
    assert!(ports
        .check_url(&url("http://media.example.com:8080/"))
        .is_ok());
    // The scheme's default port counts, written or not.
    assert!(ports
        .check_url(&url("https://media.example.com:443/"))
        .is_ok());

    assert_eq!(
        refusal(ports.check_url(&url("http://media.example.com:22/"))),
        "the recording URL's port is 22, not in media.allowed_ports (80, 443, 8000-8100): \
         serve the recording on one of those"
    );
    assert_eq!(
        refusal(ports.check_redirect(&url("https://media.example.com:6379/"))),
        "the recording URL redirects to port 6379, not in media.allowed_ports \
         (80, 443, 8000-8100): serve the recording on one of those"
    );
}

#[tokio::test]
async fn resolver_refuses_what_a_name_resolves_to_unless_allowed() {
    // "localhost" is refused by name; a numeric name goes through the lookup and is refused
    // by the address it yields, as a rebinding name would be.
    for name in ["localhost", "127.0.0.1"] {
        let err = match GuardedResolver(strict())
            .resolve(name.parse().unwrap())
            .await
        {
            Ok(addrs) => panic!("{name} resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        let blocked = err.downcast_ref::<Blocked>().expect("refused by the guard");
        assert!(
            blocked
                .to_string()
                .starts_with("the recording host resolves to a loopback address"),
            "{blocked}"
        );
    }

    let allowing = GuardedResolver(guard(true, false, &["80"]));
    let addrs: Vec<_> = allowing
        .resolve("localhost".parse().unwrap())
        .await
        .expect("localhost resolves")
        .collect();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|addr| addr.ip().is_loopback()));
}
