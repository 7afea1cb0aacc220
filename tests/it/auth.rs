use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use serde_json::json;

use crate::support::{code, Options, TestApp};
use kasvu_gateway::auth::Claims;

const Q: &str = "{ viewer { sub org roles country purpose } }";

async fn expect_401(t: &TestApp, token: &str, says: &str) {
    let (status, body) = t.gql(token, Q, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let message = body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(says),
        "message {message:?} should say {says:?}"
    );
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
    let (status, body) = t
        .post_raw(
            None,
            Some("application/json"),
            json!({"query": Q}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_signature_is_unauthenticated() {
    let t = TestApp::new().await;
    let token = t.editor();
    let (head, _) = token.rsplit_once('.').expect("jwt");
    expect_401(
        &t,
        &format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "signature",
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let t = TestApp::new().await;
    let claims = Claims::new(
        &t.jwt,
        "x",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(60),
    );
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
    let mut claims = Claims::new(
        &t.jwt,
        "x",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(60),
    );
    claims.exp = claims.iat - 120;
    expect_401(&t, &t.token_with(claims), "expired").await;
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let t = TestApp::new().await;
    let mut claims = Claims::new(
        &t.jwt,
        "x",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(600),
    );
    claims.nbf = Some(claims.iat + 300);
    expect_401(&t, &t.token_with(claims), "not valid yet").await;
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_refused() {
    let t = TestApp::new().await;
    let mut claims = Claims::new(
        &t.jwt,
        "x",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(60),
    );
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
    let claims = Claims::new(
        &t.jwt,
        "x",
        "TEM",
        &["viewer"],
        Some("XX"),
        Duration::from_secs(60),
    );
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

/// RS256 and ES256 keys from a JWKS file; an HS256 token signed with the
/// public key material (HS/RS confusion) and a dev-key token are refused.
#[tokio::test]
async fn jwks_keys_verify_and_hs256_is_refused_in_jwks_mode() {
    let dir = std::env::temp_dir().join(format!("kasvu-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let openssl = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .status()
            .expect("openssl is installed")
            .success();
        assert!(ok, "openssl {args:?}");
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
    openssl(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
    let rsa_pem = std::fs::read(dir.join("rsa.pem")).expect("rsa");
    let ec_pem = std::fs::read(dir.join("ec.pem")).expect("ec");
    // The JWKS: the RSA modulus and exponent, and the EC point, from openssl's text output.
    let rsa_text = std::process::Command::new("openssl")
        .args(["rsa", "-in", "rsa.pem", "-noout", "-modulus"])
        .current_dir(&dir)
        .output()
        .expect("modulus");
    let modulus_hex = String::from_utf8_lossy(&rsa_text.stdout)
        .trim()
        .trim_start_matches("Modulus=")
        .to_owned();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hex::decode(modulus_hex).expect("hex"));
    let ec_der = std::process::Command::new("openssl")
        .args(["pkey", "-pubin", "-in", "ec.pub.pem", "-outform", "DER"])
        .current_dir(&dir)
        .output()
        .expect("der");
    let point = &ec_der.stdout[ec_der.stdout.len() - 65..]; // 0x04 || X || Y
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"},
        {"kty": "EC", "kid": "ec1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": enc(&point[1..33]), "y": enc(&point[33..])},
    ]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("jwks");

    let t = TestApp::with(Options {
        jwks_file: Some(dir.join("jwks.json")),
        ..Options::default()
    })
    .await;
    let claims = Claims::new(
        &t.jwt,
        "idp-user",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(60),
    );
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa1".into());
    let rs = encode(
        &h,
        &claims,
        &EncodingKey::from_rsa_pem(&rsa_pem).expect("rsa key"),
    )
    .expect("sign");
    assert_eq!(t.data(&rs, Q, json!({})).await["viewer"]["sub"], "idp-user");
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec1".into());
    let es = encode(
        &h,
        &claims,
        &EncodingKey::from_ec_pem(&ec_pem).expect("ec key"),
    )
    .expect("sign");
    assert_eq!(t.data(&es, Q, json!({})).await["viewer"]["sub"], "idp-user");
    // An ES256 header on the RSA key id: the key decides the algorithm.
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("rsa1".into());
    let mixed = encode(
        &h,
        &claims,
        &EncodingKey::from_ec_pem(&ec_pem).expect("ec key"),
    )
    .expect("sign");
    expect_401(&t, &mixed, "algorithm").await;
    // HS256 "signed" with the RSA public modulus: refused before any check.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa1".into());
    let confused = encode(&h, &claims, &EncodingKey::from_secret(n.as_bytes())).expect("sign");
    expect_401(&t, &confused, "algorithm HS256 is not allowed").await;
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("unknown".into());
    let unknown = encode(
        &h,
        &claims,
        &EncodingKey::from_rsa_pem(&rsa_pem).expect("rsa key"),
    )
    .expect("sign");
    expect_401(&t, &unknown, "key id").await;
    let _ = std::fs::remove_dir_all(&dir);
}
