use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use serde_json::json;

use crate::support::{code, TestApp};
use kasvu_gateway::auth::Claims;

const Q: &str = "{ viewer { sub org roles country purpose } }";

async fn expect_401(t: &TestApp, token: &str, says: &str) {
    let (status, body) = t.gql(token, Q, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains(says), "message {message:?} should say {says:?}");
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn valid_token_becomes_the_viewer() {
    let t = TestApp::new().await;
    let token = t.token_with(Claims::new(
        &t.jwt,
        "matti",
        "BFOY",
        &["viewer", "confidential"],
        Some("us"),
        Duration::from_secs(60),
    ));
    let d = t.data(&token, Q, json!({})).await;
    assert_eq!(
        d["viewer"],
        json!({"sub": "matti", "org": "BFOY", "roles": ["viewer", "confidential"], "country": "US", "purpose": "CUSTOMER_RELATIONSHIP"})
    );
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let t = TestApp::new().await;
    let (status, body) =
        t.post_raw(None, Some("application/json"), json!({"query": Q}).to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_signature_is_unauthenticated() {
    let t = TestApp::new().await;
    let token = t.editor();
    let (head, _) = token.rsplit_once('.').expect("jwt");
    expect_401(&t, &format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "signature")
        .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let t = TestApp::new().await;
    let claims = Claims::new(&t.jwt, "x", "TEM", &["viewer"], None, Duration::from_secs(60));
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&claims).expect("json"))
    );
    expect_401(&t, &token, "").await;
    let token = format!(
        "{}.{}.sig",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&claims).expect("json"))
    );
    expect_401(&t, &token, "algorithm none is not allowed").await;
}

#[tokio::test]
async fn expired_token_is_refused() {
    let t = TestApp::new().await;
    let mut claims = Claims::new(&t.jwt, "x", "TEM", &["viewer"], None, Duration::from_secs(60));
    claims.exp = claims.iat - 120;
    expect_401(&t, &t.token_with(claims), "expired").await;
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let t = TestApp::new().await;
    let mut claims = Claims::new(&t.jwt, "x", "TEM", &["viewer"], None, Duration::from_secs(600));
    claims.nbf = Some(claims.iat + 300);
    expect_401(&t, &t.token_with(claims), "not valid yet").await;
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_refused() {
    let t = TestApp::new().await;
    let mut claims = Claims::new(&t.jwt, "x", "TEM", &["viewer"], None, Duration::from_secs(60));
    claims.iss = "someone-else".into();
    expect_401(&t, &t.token_with(claims.clone()), "issuer").await;
    claims.iss = t.jwt.issuer.clone();
    claims.aud = "another-api".into();
    expect_401(&t, &t.token_with(claims), "audience").await;
}

#[tokio::test]
async fn unknown_org_role_or_country_is_refused() {
    let t = TestApp::new().await;
    expect_401(&t, &t.token("ACME", &["viewer"]), "unknown organisation").await;
    expect_401(&t, &t.token("TEM", &["admin"]), "unknown role").await;
    let claims = Claims::new(&t.jwt, "x", "TEM", &["viewer"], Some("XX"), Duration::from_secs(60));
    expect_401(&t, &t.token_with(claims), "unknown country").await;
}

#[tokio::test]
async fn garbage_token_is_malformed() {
    let t = TestApp::new().await;
    expect_401(&t, "not-a-jwt", "malformed").await;
}

#[tokio::test]
async fn unknown_purpose_is_bad_request_and_known_one_is_used() {
    let t = TestApp::new().await;
    let token = t.editor();
    let req = |purpose: &str| {
        axum::http::Request::post("/graphql")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("x-processing-purpose", purpose)
            .body(axum::body::Body::from(json!({"query": Q}).to_string()))
            .expect("request")
    };
    let (status, _, body) = t.send(req("PROFILING")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("unknown processing purpose"));
    let (status, _, body) = t.send(req("MARKETING")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"purpose\":\"MARKETING\""), "{body}");
}

/// Keys made with openssl for a test: PEMs to sign with, and their JWKS.
struct Keys {
    dir: std::path::PathBuf,
    rsa_pem: Vec<u8>,
    ec_pem: Vec<u8>,
    rsa_jwk: serde_json::Value,
    ec_jwk: serde_json::Value,
}

impl Keys {
    fn make() -> Keys {
        let dir = std::env::temp_dir().join(format!("kasvu-jwks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed");
            assert!(out.status.success(), "openssl {args:?}");
            out.stdout
        };
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ]);
        let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let modulus =
            String::from_utf8_lossy(&openssl(&["rsa", "-in", "rsa.pem", "-noout", "-modulus"]))
                .trim()
                .trim_start_matches("Modulus=")
                .to_owned();
        let ec_der = openssl(&["pkey", "-in", "ec.pem", "-pubout", "-outform", "DER"]);
        let point = &ec_der[ec_der.len() - 65..]; // 0x04 || X || Y
        Keys {
            rsa_pem: std::fs::read(dir.join("rsa.pem")).expect("rsa"),
            ec_pem: std::fs::read(dir.join("ec.pem")).expect("ec"),
            rsa_jwk: json!({"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": enc(&hex::decode(modulus).expect("hex")), "e": "AQAB"}),
            ec_jwk: json!({"kty": "EC", "kid": "ec1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": enc(&point[1..33]), "y": enc(&point[33..])}),
            dir,
        }
    }

    fn sign(&self, alg: jsonwebtoken::Algorithm, kid: &str, claims: &Claims) -> String {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.rsa_pem).expect("rsa key"),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.ec_pem).expect("ec key"),
            _ => EncodingKey::from_secret(self.rsa_jwk["n"].as_str().unwrap_or("").as_bytes()),
        };
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        encode(&h, claims, &key).expect("sign")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// RS256 and ES256 keys from a JWKS file; an HS256 token keyed with the
/// public key material (HS/RS confusion) and a mismatched algorithm are refused.
#[tokio::test]
async fn jwks_keys_verify_and_hs256_is_refused_in_jwks_mode() {
    use jsonwebtoken::Algorithm::{ES256, HS256, RS256};
    let keys = Keys::make();
    let file = keys.dir.join("jwks.json");
    std::fs::write(&file, json!({"keys": [keys.rsa_jwk, keys.ec_jwk]}).to_string()).expect("jwks");
    let t = TestApp::with(|c| c.jwt.jwks_file = Some(file)).await;
    let claims = Claims::new(&t.jwt, "idp-user", "TEM", &["viewer"], None, Duration::from_secs(60));
    assert_eq!(
        t.data(&keys.sign(RS256, "rsa1", &claims), Q, json!({})).await["viewer"]["sub"],
        "idp-user"
    );
    assert_eq!(
        t.data(&keys.sign(ES256, "ec1", &claims), Q, json!({})).await["viewer"]["sub"],
        "idp-user"
    );
    // An ES256 header on the RSA key id: the key decides the algorithm.
    expect_401(&t, &keys.sign(ES256, "rsa1", &claims), "algorithm").await;
    // HS256 "signed" with the RSA public modulus: refused before any check.
    expect_401(&t, &keys.sign(HS256, "rsa1", &claims), "algorithm HS256 is not allowed").await;
    expect_401(&t, &keys.sign(RS256, "unknown", &claims), "key id").await;
}

/// A JWKS served over HTTP (a local listener standing in for the identity
/// provider): fetched at start, refetched when a token names a new key.
#[tokio::test]
async fn jwks_url_is_fetched_and_refetched_for_a_rotated_key() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    use std::sync::{Arc, RwLock};
    let keys = Keys::make();
    let served = Arc::new(RwLock::new(json!({"keys": [keys.rsa_jwk]}).to_string()));
    let state = served.clone();
    let idp = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = state.read().map(|s| s.clone()).unwrap_or_default();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, idp).await });

    let t = TestApp::with(|c| c.jwt.jwks_url = Some(format!("http://{addr}/jwks.json"))).await;
    let claims = Claims::new(&t.jwt, "idp-user", "TEM", &["viewer"], None, Duration::from_secs(60));
    assert_eq!(
        t.data(&keys.sign(RS256, "rsa1", &claims), Q, json!({})).await["viewer"]["sub"],
        "idp-user"
    );
    expect_401(&t, &keys.sign(ES256, "ec1", &claims), "key id").await;
    // The provider rotates in a new key; the next token that names it is accepted.
    *served.write().expect("lock") = json!({"keys": [keys.rsa_jwk, keys.ec_jwk]}).to_string();
    assert_eq!(
        t.data(&keys.sign(ES256, "ec1", &claims), Q, json!({})).await["viewer"]["sub"],
        "idp-user"
    );
}

#[tokio::test]
async fn unreachable_jwks_url_stops_the_start_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener); // nothing listens there now
    let err = TestApp::try_with(|c| c.jwt.jwks_url = Some(format!("http://{addr}/jwks.json")))
        .await
        .err()
        .expect("start must fail");
    assert!(format!("{err:#}").contains(&addr.to_string()), "{err:#}");
}
