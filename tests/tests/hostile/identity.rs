//! Hostile: identity. A client behind a proxy, or a client with an IPv6 network, or
//! one that sends an identifying header, must get no more than the limit: no fresh
//! bucket per request, no spending of someone else's quota, no key per address.

use crate::support::*;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};
use throttle::{
    HttpThrottle, ThrottleLayer,
    backend::MemoryBackend,
    identity::{ClientIp, Identifier},
};

/// The proxy every request below comes through, in the trusted 10.0.0.0/8.
const PROXY: &str = "10.0.0.2";
const ATTACKER: &str = "198.51.100.66";
const VICTIM: &str = "198.51.100.7";

fn router(uid: &str, rate: &str, backend: &MemoryBackend, identifier: Option<Identifier>) -> Router {
    let mut builder = HttpThrottle::builder(uid).rate(rate).backend(backend.clone());
    if let Some(identifier) = identifier {
        builder = builder.identifier(identifier);
    }
    Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(builder.build().expect("valid throttle")))
}

/// A GET from `peer` (any address family), with raw header bytes appended in order.
fn from(peer: &str, headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut request = Request::get("/").body(Body::empty()).expect("valid request");
    let peer: IpAddr = peer.parse().expect("an address");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer, 40_000)));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        request.headers_mut().append(name, HeaderValue::from_bytes(value).expect("a header value"));
    }
    request
}

async fn admitted(app: &Router, requests: impl IntoIterator<Item = Request<Body>>) -> usize {
    let mut admitted = 0;
    for request in requests {
        match send(app, request).await.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected status {other}"),
        }
    }
    admitted
}

/// The proxy writes `written` (its header, `value_for(client)`); the attacker adds
/// every header in `forged`. A fresh forged address per request gets no fresh bucket,
/// and naming the victim spends nothing of the victim's quota.
async fn forged_headers_gain_nothing(uid: &str, client_ip: ClientIp, written: &str, forged: &[&str]) {
    let (backend, _clock) = manual_backend();
    let app = router(uid, "2/min", &backend, Some(Identifier::client_ip(client_ip)));
    let value_for = |header: &str, ip: &str| match header {
        "forwarded" => format!("for={ip}"),
        _ => ip.to_string(),
    };
    let attack = |forged_ip: String| {
        let mut headers: Vec<(&str, Vec<u8>)> =
            forged.iter().map(|h| (*h, value_for(h, &forged_ip).into_bytes())).collect();
        headers.push((written, value_for(written, ATTACKER).into_bytes()));
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(h, v)| (*h, v.as_slice())).collect();
        from(PROXY, &headers)
    };
    let rotating = admitted(&app, (0..10).map(|i| attack(format!("203.0.113.{i}")))).await;
    assert_eq!(rotating, 2, "a forged address per request must not buy a fresh bucket");
    assert_eq!(admitted(&app, (0..5).map(|_| attack(VICTIM.to_string()))).await, 0);
    let victim = (0..2).map(|_| from(PROXY, &[(written, value_for(written, VICTIM).as_bytes())]));
    assert_eq!(admitted(&app, victim).await, 2, "the victim's quota is untouched");
    assert_eq!(backend.len(), 2, "one key per real client");
}

#[tokio::test]
async fn forged_forwarded_behind_an_xff_proxy_gains_nothing() {
    let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
    forged_headers_gain_nothing("hostile:id:xff", client_ip, "x-forwarded-for", &["forwarded", "x-real-ip"]).await;
}

#[tokio::test]
async fn forged_xff_behind_an_x_real_ip_proxy_gains_nothing() {
    let client_ip = ClientIp::x_real_ip().trust("10.0.0.0/8").unwrap();
    forged_headers_gain_nothing("hostile:id:real-ip", client_ip, "x-real-ip", &["x-forwarded-for", "forwarded"]).await;
}

#[tokio::test]
async fn forged_headers_behind_a_single_address_header_gain_nothing() {
    let client_ip = ClientIp::header("cf-connecting-ip").unwrap().trust("10.0.0.0/8").unwrap();
    let forged = ["x-forwarded-for", "forwarded", "x-real-ip", "true-client-ip"];
    forged_headers_gain_nothing("hostile:id:cf", client_ip, "cf-connecting-ip", &forged).await;
}

#[tokio::test]
async fn a_non_ascii_prefix_on_the_xff_line_keeps_the_appended_address() {
    let (backend, _clock) = manual_backend();
    let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
    let app = router("hostile:id:non-ascii", "2/min", &backend, Some(Identifier::client_ip(client_ip)));
    let clean = || from(PROXY, &[("x-forwarded-for", ATTACKER.as_bytes())]);
    assert_eq!(admitted(&app, [clean(), clean()]).await, 2);
    // nginx's `$proxy_add_x_forwarded_for` appends the real address to the client's line.
    let line = [&b"\xff\xfe6.6.6.6, "[..], ATTACKER.as_bytes()].concat();
    let junk = || from(PROXY, &[("x-forwarded-for", &line)]);
    assert_eq!(admitted(&app, [junk(), junk(), junk()]).await, 0, "still the attacker's own bucket");
    assert_eq!(backend.len(), 1);
}

#[tokio::test]
async fn an_unparseable_hop_ends_the_walk() {
    let (backend, _clock) = manual_backend();
    // An inner proxy (10.1.1.1) that cannot name its client writes `unknown` (RFC 7239
    // allows it) or garbage; everything left of that is the attacker's.
    type Chain = fn(usize) -> String;
    let cases: [(&str, ClientIp, &str, Chain); 3] = [
        ("forwarded", ClientIp::forwarded(), "forwarded", |i| format!("for=203.0.113.{i}, for=unknown, for=10.1.1.1")),
        ("xff-garbage", ClientIp::x_forwarded_for(), "x-forwarded-for", |i| {
            format!("203.0.113.{i}, garbage, 10.1.1.1")
        }),
        ("xff-zone", ClientIp::x_forwarded_for(), "x-forwarded-for", |i| {
            format!("203.0.113.{i}, fe80::1%eth0, 10.1.1.1")
        }),
    ];
    for (case, client_ip, header, chain) in cases {
        let identifier = Identifier::client_ip(client_ip.trust("10.0.0.0/8").unwrap());
        let app = router(&format!("hostile:id:hop:{case}"), "2/min", &backend, Some(identifier));
        let rotating = (0..10).map(|i| from(PROXY, &[(header, chain(i).as_bytes())]));
        assert_eq!(admitted(&app, rotating).await, 2, "{case}: the walk never reaches the forged part");
    }
    assert_eq!(backend.len(), 3, "one key (the inner proxy's) per throttle");
}

#[tokio::test]
async fn an_ipv6_host_rotating_addresses_within_its_64_is_throttled_with_one_key() {
    let (backend, _clock) = manual_backend();
    let throttle = HttpThrottle::builder("hostile:id:ipv6").rate("3/min").backend(backend.clone()).build().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(ThrottleLayer::new(throttle.clone()));
    let address = |i: u32| format!("2001:db8:1:2:{:x}:{:x}::{:x}", i * 7919 % 65_536, i, i + 1);
    assert_eq!(admitted(&app, (0..20).map(|i| from(&address(i), &[]))).await, 3);
    assert_eq!(backend.len(), 1, "one key for the whole /64");
    let key = |ip: &str| {
        let throttle = throttle.clone();
        let request = from(ip, &[]);
        async move { throttle.stat(&request).await.unwrap().expect("counted").key }
    };
    assert_eq!(key(&address(1)).await, key(&address(2)).await);
    assert_eq!(key(&address(3)).await, "throttle:hostile:id:ipv6:ip=2001%3Adb8%3A1%3A2%3A%3A/64:default");
    assert_eq!(admitted(&app, [from("2001:db8:1:3::1", &[])]).await, 1, "the next /64 is someone else");
}

#[tokio::test]
async fn ipv4_mapped_addresses_are_ipv4_in_every_identifier() {
    let (backend, _clock) = manual_backend();
    let identifiers = [
        ("peer", None),
        ("header-fallback", Some(Identifier::header("x-api-key").unwrap())),
        ("client-ip", Some(Identifier::client_ip(ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap()))),
        ("extension-fallback", Some(Identifier::extension(|user: &u64| user.to_string()))),
    ];
    for (case, identifier) in identifiers {
        let app = router(&format!("hostile:id:mapped:{case}"), "1/min", &backend, identifier);
        assert_eq!(admitted(&app, [from("::ffff:198.51.100.7", &[])]).await, 1, "{case}");
        assert_eq!(admitted(&app, [from("198.51.100.7", &[])]).await, 0, "{case}: the same client");
    }
    // Behind a proxy: a mapped hop and a mapped proxy.
    let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
    let app = router("hostile:id:mapped:hop", "1/min", &backend, Some(Identifier::client_ip(client_ip)));
    assert_eq!(admitted(&app, [from("::ffff:10.0.0.2", &[("x-forwarded-for", b"::ffff:198.51.100.9")])]).await, 1);
    assert_eq!(admitted(&app, [from(PROXY, &[("x-forwarded-for", b"198.51.100.9")])]).await, 0);
}

#[tokio::test]
async fn a_header_id_cannot_drain_the_bucket_of_an_ip() {
    let (backend, _clock) = manual_backend();
    let by_key = Identifier::header("x-api-key").unwrap();
    let app = router("hostile:id:kinds", "1/min", &backend, Some(by_key));
    let named = || from("203.0.113.9", &[("x-api-key", b"ip=198.51.100.77")]);
    let bare_ip = || from("203.0.113.9", &[("x-api-key", b"198.51.100.77")]);
    assert_eq!(admitted(&app, [named(), named(), bare_ip(), bare_ip()]).await, 2);
    assert_eq!(admitted(&app, [from("198.51.100.77", &[])]).await, 1, "the keyless client at that IP keeps its bucket");

    let composite = Identifier::composite([Identifier::header("x-a").unwrap(), Identifier::header("x-b").unwrap()]);
    let both = router("hostile:id:composite", "1/min", &backend, Some(composite));
    let pair = |a: &'static [u8], b: &'static [u8]| from("203.0.113.9", &[("x-a", a), ("x-b", b)]);
    assert_eq!(admitted(&both, [pair(b"k,hdr=1", b"2"), pair(b"k", b"1,hdr=2")]).await, 2, "parts join one-to-one");
}

#[tokio::test]
async fn header_ids_are_one_to_one_over_raw_bytes() {
    let (backend, _clock) = manual_backend();
    let app = router("hostile:id:bytes", "1/min", &backend, Some(Identifier::header("x-api-key").unwrap()));
    let keys: [&[u8]; 5] = [b"key\xfe", b"key\xff", "key\u{fffd}".as_bytes(), b"key%FE", b"key%25FE"];
    let requests = keys.map(|key| from("203.0.113.9", &[("x-api-key", key)]));
    assert_eq!(admitted(&app, requests).await, keys.len(), "every distinct value is its own client");
    assert_eq!(backend.len(), keys.len());
}

/// Warnings captured from `tracing`, on this thread only.
mod warnings {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub(super) struct Warnings(Arc<Mutex<Vec<String>>>);

    impl Warnings {
        /// Runs with this collector as the thread's subscriber.
        pub(super) fn install(&self) -> tracing::subscriber::DefaultGuard {
            tracing::subscriber::set_default(self.clone())
        }

        pub(super) fn all(&self) -> Vec<String> {
            self.0.lock().expect("not poisoned").clone()
        }

        pub(super) fn count(&self, needle: &str) -> usize {
            self.all().iter().filter(|w| w.contains(needle)).count()
        }
    }

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().expect("not poisoned").push(message.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

use warnings::Warnings;

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_reported_once() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let (backend, _clock) = manual_backend();
    let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
    let app = router("hostile:id:report:untrusted", "100/min", &backend, Some(Identifier::client_ip(client_ip)));
    let forged = || from("203.0.113.9", &[("x-forwarded-for", b"6.6.6.6")]);
    admitted(&app, [from("203.0.113.9", &[]), from(PROXY, &[("x-forwarded-for", b"1.1.1.1")])]).await;
    assert_eq!(warnings.all(), Vec::<String>::new(), "a direct client and a good proxy are no misconfiguration");
    admitted(&app, [forged(), forged(), forged()]).await;
    assert_eq!(warnings.count("203.0.113.9, which is not a trusted proxy, carried `x-forwarded-for`"), 1);
    assert_eq!(warnings.all().len(), 1);
    assert!(!warnings.all()[0].contains("6.6.6.6"), "the client's value is never logged");
}

#[tokio::test]
async fn a_trusted_proxy_without_the_header_is_reported_once() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let (backend, _clock) = manual_backend();
    let client_ip = ClientIp::x_real_ip().trust("10.0.0.0/8").unwrap();
    let app = router("hostile:id:report:silent", "100/min", &backend, Some(Identifier::client_ip(client_ip)));
    // This proxy writes X-Forwarded-For, not the X-Real-IP the app was told to read.
    let request = || from(PROXY, &[("x-forwarded-for", b"198.51.100.7")]);
    admitted(&app, [request(), request(), request()]).await;
    assert_eq!(warnings.count("trusted proxy 10.0.0.2 sent no `x-real-ip`"), 1);
    assert_eq!(warnings.all().len(), 1);
}

#[tokio::test]
async fn missing_connect_info_is_reported_once_per_throttle() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let (backend, _clock) = manual_backend();
    let bare = || Request::get("/").body(Body::empty()).unwrap();
    let by_peer = router("hostile:id:report:bare-peer", "100/min", &backend, None);
    let by_proxy = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
    let by_proxy = router("hostile:id:report:bare-proxy", "100/min", &backend, Some(Identifier::client_ip(by_proxy)));
    for app in [&by_peer, &by_proxy] {
        assert_eq!(admitted(app, [bare(), bare(), bare()]).await, 3);
    }
    assert_eq!(warnings.count("no ConnectInfo<SocketAddr>"), 2, "once for each throttle's identifier");
    assert_eq!(warnings.all().len(), 2);
}

fn resolve(client_ip: &ClientIp, peer: &str, headers: &[(&str, &[u8])]) -> IpAddr {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
    }
    client_ip.resolve(peer.parse().unwrap(), &map)
}

fn every_source() -> Vec<ClientIp> {
    let trusted = |c: ClientIp| c.trust("10.0.0.0/8").unwrap().trust("2001:db8:ffff::/48").unwrap();
    vec![
        ClientIp::peer(),
        trusted(ClientIp::x_forwarded_for()),
        trusted(ClientIp::forwarded()),
        trusted(ClientIp::x_real_ip()),
        trusted(ClientIp::header("cf-connecting-ip").unwrap()),
    ]
}

const HEADERS: [&str; 4] = ["x-forwarded-for", "forwarded", "x-real-ip", "cf-connecting-ip"];

/// Bytes a header value may hold (no CR, LF, NUL or DEL), weighted toward the syntax
/// the parsers care about.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let syntax = prop::sample::select(b"0123456789abcdef.:[]\",;= \t\\_%fForunknown".to_vec());
    let any_allowed = any::<u8>().prop_filter("a header value byte", |b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f));
    prop::collection::vec(prop_oneof![3 => syntax, 1 => any_allowed], 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_header_bytes_panic_the_parsers(
        lines in prop::collection::vec((0..HEADERS.len(), header_bytes()), 0..6),
        trusted_peer in any::<bool>(),
    ) {
        let headers: Vec<(&str, &[u8])> = lines.iter().map(|(h, v)| (HEADERS[*h], v.as_slice())).collect();
        let peer = if trusted_peer { PROXY } else { "203.0.113.9" };
        for client_ip in every_source() {
            let client = resolve(&client_ip, peer, &headers);
            if !trusted_peer {
                prop_assert_eq!(client, peer.parse::<IpAddr>().unwrap(), "an untrusted peer is the client");
            }
        }
    }

    #[test]
    fn long_trusted_chains_resolve_to_the_client(hops in 0usize..7_000) {
        let xff = format!("6.6.6.6, {VICTIM}{}", ", 10.1.2.3".repeat(hops));
        let client_ip = ClientIp::x_forwarded_for().trust("10.0.0.0/8").unwrap();
        prop_assert_eq!(resolve(&client_ip, PROXY, &[("x-forwarded-for", xff.as_bytes())]), VICTIM.parse::<IpAddr>().unwrap());
        let forwarded = format!("for=6.6.6.6, for={VICTIM}{}", r#", for="10.1.2.3";proto=https"#.repeat(hops / 3));
        let client_ip = ClientIp::forwarded().trust("10.0.0.0/8").unwrap();
        prop_assert_eq!(resolve(&client_ip, PROXY, &[("forwarded", forwarded.as_bytes())]), VICTIM.parse::<IpAddr>().unwrap());
    }
}

#[test]
fn sixty_four_kilobyte_headers_parse() {
    // `head`, then `unit` repeated to 64 KB, then `tail`.
    let line =
        |head: &str, unit: &str, tail: &str| [head, &unit.repeat(64 * 1024 / unit.len()), tail].concat().into_bytes();
    let proxy: IpAddr = PROXY.parse().unwrap();
    let victim: IpAddr = VICTIM.parse().unwrap();
    let [_, xff, forwarded, x_real_ip, cloudflare] = <[ClientIp; 5]>::try_from(every_source()).unwrap();
    let appended = format!(", {VICTIM}");
    let appended_for = format!(", for={VICTIM}");
    let cases: [(&ClientIp, &str, Vec<u8>, IpAddr); 10] = [
        // Forged junk to the left of the address a proxy appended.
        (&xff, "x-forwarded-for", line("", "6.6.6.6, ", &format!("{VICTIM}, 10.1.1.1")), victim),
        (&xff, "x-forwarded-for", line("", ",", &appended), victim),
        (&xff, "x-forwarded-for", line("", "\u{ff}", &appended), victim),
        (&xff, "x-forwarded-for", line("", "10.1.1.1,", "10.2.2.2"), "10.1.1.1".parse().unwrap()),
        (&forwarded, "forwarded", line("", "for=6.6.6.6;a=\"\\\\;,\",", &appended_for[1..]), victim),
        (&forwarded, "forwarded", line("", ";", &appended_for), victim),
        (&forwarded, "forwarded", line("", "\"\"", &appended_for), victim),
        // An unterminated quote: the rest of its line is one malformed element.
        (&forwarded, "forwarded", line("for=\"", "a", &appended_for), proxy),
        (&x_real_ip, "x-real-ip", line("", "1", ""), proxy),
        (&cloudflare, "cf-connecting-ip", line("", "6.6.6.6, ", VICTIM), victim),
    ];
    for (i, (client_ip, header, value, expected)) in cases.into_iter().enumerate() {
        assert!(value.len() >= 64 * 1024);
        assert_eq!(resolve(client_ip, PROXY, &[(header, &value)]), expected, "case {i}");
    }
}
