use proptest::prelude::*;

use super::*;

// RFC 7677 §3: user "user", password "pencil".
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_verifier(password: &str) -> ScramVerifier {
    ScramVerifier::derive(password, &B64.decode(RFC_SALT).expect("salt"), 4096)
}

fn rfc_server(password: &str) -> ScramServer {
    ScramServer::with_nonce(rfc_verifier(password), RFC_SERVER_NONCE).expect("nonce")
}

#[test]
fn rfc7677_exchange() {
    let first = rfc_server("pencil").client_first(RFC_CLIENT_FIRST).expect("client-first");
    assert_eq!(first.message(), RFC_SERVER_FIRST);
    assert_eq!(first.username(), "user");
    let done = first.client_final(RFC_CLIENT_FINAL).expect("proof accepted");
    assert_eq!(done.message(), RFC_SERVER_FINAL);
}

#[test]
fn rfc7677_exchange_through_the_stored_text_format() {
    let text = rfc_verifier("pencil").encode();
    let verifier = ScramVerifier::parse(&text).expect("parse");
    let server = ScramServer::with_nonce(verifier, RFC_SERVER_NONCE).expect("nonce");
    let done = server.client_first(RFC_CLIENT_FIRST).and_then(|s| s.client_final(RFC_CLIENT_FINAL));
    assert_eq!(done.expect("accepted").message(), RFC_SERVER_FINAL);
}

#[test]
fn wrong_password_is_bad_credentials() {
    let first = rfc_server("pencil2").client_first(RFC_CLIENT_FIRST).expect("client-first");
    assert!(matches!(first.client_final(RFC_CLIENT_FINAL), Err(Error::BadCredentials)));
}

#[test]
fn mock_verifier_fails_at_the_proof_with_a_stable_salt() {
    let a = ScramVerifier::mock("nobody", b"secret");
    let b = ScramVerifier::mock("nobody", b"secret");
    assert_eq!(a.salt(), b.salt(), "same salt for the same name, like a real user");
    assert_ne!(a.salt(), ScramVerifier::mock("somebody", b"secret").salt());
    assert_eq!(a.salt().len(), SALT_LEN);
    let first = ScramServer::with_nonce(a, RFC_SERVER_NONCE).and_then(|s| s.client_first(RFC_CLIENT_FIRST));
    assert!(matches!(first.and_then(|f| f.client_final(RFC_CLIENT_FINAL)), Err(Error::BadCredentials)));
}

#[test]
fn tampered_final_messages_are_refused() {
    let cases = [
        // nonce changed
        RFC_CLIENT_FINAL.replace("k0,p=", "k1,p="),
        // channel binding claims "y,,"
        RFC_CLIENT_FINAL.replace("c=biws", "c=eSws"),
        // proof of the wrong length
        RFC_CLIENT_FINAL.replace("AndVQ=", "AndV"),
        // no proof
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_owned(),
        String::new(),
    ];
    for case in cases {
        let first = rfc_server("pencil").client_first(RFC_CLIENT_FIRST).expect("client-first");
        assert!(matches!(first.client_final(&case), Err(Error::Malformed { .. })), "{case:?}");
    }
    // a flipped proof bit is a wrong proof, not a malformed message
    let flipped = RFC_CLIENT_FINAL.replace("p=dHzb", "p=dHza");
    let first = rfc_server("pencil").client_first(RFC_CLIENT_FIRST).expect("client-first");
    assert!(matches!(first.client_final(&flipped), Err(Error::BadCredentials)));
}

#[test]
fn client_first_options() {
    let ok = |m: &str| rfc_server("pencil").client_first(m).map(|f| f.username().to_owned());
    assert_eq!(ok("y,,n=user,r=abc").expect("y flag"), "user");
    assert_eq!(ok("n,,n=,r=abc").expect("empty user, as libpq sends"), "");
    assert_eq!(ok("n,,n=a=2Cb,r=abc,x=ext").expect("extension ignored"), "a,b");
    let unsupported = ["p=tls-server-end-point,,n=user,r=abc", "n,a=admin,n=user,r=abc", "n,,m=ext,n=user,r=abc"];
    for m in unsupported {
        assert!(matches!(ok(m), Err(Error::ScramUnsupported { .. })), "{m}");
    }
    let malformed = ["", "n", "n,", "x,,n=user,r=abc", "n,,r=abc", "n,,n=user", "n,,n=user,r=", "n,,n=u=ZZ,r=a"];
    for m in malformed {
        assert!(matches!(ok(m), Err(Error::Malformed { .. })), "{m}");
    }
    assert!(ok(&format!("n,,n=user,r={}", "a".repeat(5000))).is_err());
}

#[test]
fn y_flag_must_be_echoed_in_the_final_message() {
    let first = rfc_server("pencil").client_first("y,,n=user,r=rOprNGfwEbeRWgbNEkqO").expect("client-first");
    // The RFC client final echoes "n,," (biws), not "y,,": refused before the proof is looked at.
    assert!(matches!(first.client_final(RFC_CLIENT_FINAL), Err(Error::Malformed { .. })));
}

#[test]
fn generated_verifiers_have_postgres_shape() {
    let text = scram_sha256_verifier("pencil");
    let (head, keys) = text.split_once('$').and_then(|(_, r)| r.split_once('$')).expect("two $");
    let (iterations, salt) = head.split_once(':').expect("iterations:salt");
    assert!(text.starts_with("SCRAM-SHA-256$4096:"));
    assert_eq!(iterations, "4096");
    assert_eq!(B64.decode(salt).expect("salt").len(), SALT_LEN);
    let (stored, server) = keys.split_once(':').expect("stored:server");
    assert_eq!(B64.decode(stored).expect("stored").len(), 32);
    assert_eq!(B64.decode(server).expect("server").len(), 32);
    let v = ScramVerifier::parse(&text).expect("parse");
    assert!(v.matches("pencil"));
    assert!(!v.matches("pencil!"));
    assert_ne!(text, scram_sha256_verifier("pencil"), "random salt");
}

#[test]
fn saslprep_is_applied_like_postgres() {
    // U+00A0 (no-break space) maps to a plain space under SASLprep.
    let salt = [1u8; 16];
    assert_eq!(ScramVerifier::derive("a\u{a0}b", &salt, 1), ScramVerifier::derive("a b", &salt, 1));
    // A prohibited character (U+0007) makes SASLprep fail: the raw bytes are used instead.
    assert_ne!(ScramVerifier::derive("a\u{7}b", &salt, 1), ScramVerifier::derive("ab", &salt, 1));
}

#[test]
fn malformed_verifiers() {
    let good = rfc_verifier("pencil").encode();
    let cases = [
        String::new(),
        "SCRAM-SHA-256$".into(),
        good.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
        good.replace("4096:", "0:"),
        good.replace("4096:", "-1:"),
        good.replace("4096:", "+4096:"),
        good.replace("4096:", "99999999999:"),
        good.replace("4096:", ":"),
        good.replace(RFC_SALT, ""),
        good.replace(RFC_SALT, "not base64!"),
        good.replacen(':', ";", 2),
        good.trim_end_matches('=').to_owned(),
        format!("{good}:extra"),
    ];
    for case in cases {
        assert!(ScramVerifier::parse(&case).is_err(), "{case:?}");
    }
}

#[test]
fn debug_redacts_keys() {
    let v = rfc_verifier("pencil");
    let shown = format!("{v:?}");
    assert!(!shown.contains(&B64.encode(v.stored_key())), "{shown}");
    assert!(shown.contains("4096"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = ScramVerifier::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_near_misses(iter in "[0-9+-]{0,12}", salt in "[A-Za-z0-9+/=]{0,30}",
                                         k1 in "[A-Za-z0-9+/=]{0,48}", k2 in "[A-Za-z0-9+/=]{0,48}") {
        let _ = ScramVerifier::parse(&format!("SCRAM-SHA-256${iter}:{salt}${k1}:{k2}"));
    }

    #[test]
    fn generate_then_parse_round_trips(password in any::<String>(), salt in prop::collection::vec(any::<u8>(), 1..64),
                                       iterations in 1u32..20) {
        let v = ScramVerifier::derive(&password, &salt, iterations);
        let text = v.encode();
        let parsed = ScramVerifier::parse(&text);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&v));
        prop_assert_eq!(parsed.map(|p| p.encode()).ok(), Some(text));
    }

    #[test]
    fn server_messages_never_panic(first in any::<String>(), last in any::<String>()) {
        let verifier = ScramVerifier::derive("pencil", b"salt", 1);
        if let Ok(state) = ScramServer::new(verifier).client_first(&first) {
            let _ = state.client_final(&last);
        }
    }

    #[test]
    fn server_final_never_panics_after_a_valid_first(last in "(c=biws,)?(r=[!-~]{0,40},)?(p=[A-Za-z0-9+/=]{0,50})?") {
        let verifier = ScramVerifier::derive("pencil", b"salt", 1);
        let state = ScramServer::new(verifier).client_first("n,,n=user,r=abc");
        prop_assert!(state.is_ok());
        if let Ok(state) = state {
            let _ = state.client_final(&last);
        }
    }
}
