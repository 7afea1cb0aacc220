//! JWT verification. The algorithm is decided by the configured key, never by
//! the token: HS256 with the development key, or RS256/ES256 with keys from a
//! JWKS file or URL. `alg: none` and HS/RS confusion are refused before any
//! signature check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

#[derive(Debug, Clone, clap::Args)]
pub struct JwtConfig {
    /// Required `iss` claim.
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER", default_value = "kasvu-gateway-dev")]
    pub issuer: String,
    /// Required `aud` claim.
    #[arg(long = "jwt-audience", env = "JWT_AUDIENCE", default_value = "kasvu-gateway")]
    pub audience: String,
    /// JWKS file with the identity provider's RS256/ES256 public keys.
    #[arg(long = "jwt-jwks-file", env = "JWT_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL of the identity provider (fetched at start, refetched for an unknown `kid`).
    #[arg(long = "jwt-jwks-url", env = "JWT_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// A JWKS is refetched for an unknown `kid` (key rotation) at most this often.
    #[arg(long = "jwt-jwks-refetch-secs", env = "JWT_JWKS_REFETCH_SECS", default_value_t = 60)]
    pub jwks_refetch_secs: u64,
    /// HS256 development key, used when no JWKS is configured; created on first run.
    #[arg(long = "jwt-dev-key-file", env = "JWT_DEV_KEY_FILE", default_value = ".dev/jwt-dev.key")]
    pub dev_key_file: PathBuf,
    /// Clock skew tolerated for `exp` and `nbf`, in seconds.
    #[arg(long = "jwt-leeway-secs", env = "JWT_LEEWAY_SECS", default_value_t = 30)]
    pub leeway_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is wrong")]
    Issuer,
    #[error("token audience is wrong")]
    Audience,
    #[error("token has no key id the identity provider knows")]
    UnknownKey,
    #[error("token claim rejected: {0}")]
    Claim(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub org: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub iat: u64,
}

enum Keys {
    Dev(DecodingKey),
    Jwks {
        store: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
        source: JwksSource,
        last_fetch: Mutex<Instant>,
    },
}

#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    Url(String),
}

pub struct Verifier {
    refetch: Duration,
    issuer: String,
    audience: String,
    leeway: u64,
    keys: Keys,
}

impl Verifier {
    pub async fn from_config(config: &JwtConfig) -> anyhow::Result<Self> {
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(_), Some(_)) => {
                anyhow::bail!("configure JWT_JWKS_FILE or JWT_JWKS_URL, not both")
            }
            (Some(path), None) => Some(JwksSource::File(path.clone())),
            (None, Some(url)) => Some(JwksSource::Url(url.clone())),
            (None, None) => None,
        };
        let keys = match source {
            Some(source) => {
                let keys = fetch_jwks(&source).await?;
                anyhow::ensure!(!keys.is_empty(), "the JWKS has no RS256 or ES256 key with a kid");
                Keys::Jwks {
                    store: RwLock::new(keys),
                    source,
                    last_fetch: Mutex::new(Instant::now()),
                }
            }
            None => Keys::Dev(DecodingKey::from_secret(&dev_key(&config.dev_key_file, true)?)),
        };
        Ok(Verifier {
            refetch: Duration::from_secs(config.jwks_refetch_secs),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            keys,
        })
    }

    pub fn mode(&self) -> &'static str {
        match self.keys {
            Keys::Dev(_) => "development HS256 key",
            Keys::Jwks { .. } => "JWKS (RS256/ES256)",
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let (alg, kid) = read_header(token)?;
        match &self.keys {
            Keys::Dev(key) => {
                if alg != "HS256" {
                    return Err(AuthError::Algorithm(alg));
                }
                self.decode(token, key, Algorithm::HS256)
            }
            Keys::Jwks { store, source, last_fetch } => {
                if alg != "RS256" && alg != "ES256" {
                    return Err(AuthError::Algorithm(alg));
                }
                let kid = kid.ok_or(AuthError::UnknownKey)?;
                let found = store.read().await.get(&kid).cloned();
                let (key, key_alg) = match found {
                    Some(k) => k,
                    None => {
                        // Key rotation: refetch, but not more often than configured.
                        let mut last = last_fetch.lock().await;
                        if last.elapsed() >= self.refetch {
                            *last = Instant::now();
                            match fetch_jwks(source).await {
                                Ok(keys) => *store.write().await = keys,
                                Err(e) => tracing::warn!(error = %e, "JWKS refetch failed"),
                            }
                        }
                        drop(last);
                        store.read().await.get(&kid).cloned().ok_or(AuthError::UnknownKey)?
                    }
                };
                if format!("{key_alg:?}") != alg {
                    return Err(AuthError::Algorithm(alg));
                }
                self.decode(token, &key, key_alg)
            }
        }
    }

    fn decode(&self, token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = self.leeway;
        jsonwebtoken::decode::<Claims>(token, key, &v).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::Issuer,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm(format!("{alg:?}")),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Claim(format!("missing claim {c}"))
                }
                _ => AuthError::Malformed(e.to_string()),
            }
        })
    }
}

/// Reads `alg` and `kid` from the header without trusting anything else in it.
fn read_header(token: &str) -> Result<(String, Option<String>), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("a JWT has three dot-separated parts".into()));
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("header is not base64url".into()))?;
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
        kid: Option<String>,
    }
    let h: RawHeader = serde_json::from_slice(&raw)
        .map_err(|_| AuthError::Malformed("header is not a JWT header".into()))?;
    Ok((h.alg, h.kid))
}

async fn fetch_jwks(
    source: &JwksSource,
) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
    let text = match source {
        JwksSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| anyhow::anyhow!("reading JWKS {}: {e}", path.display()))?,
        JwksSource::Url(url) => {
            let fetch = async {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
                client.get(url).send().await?.error_for_status()?.text().await
            };
            fetch
                .await
                .map_err(|e: reqwest::Error| anyhow::anyhow!("fetching JWKS from {url}: {e}"))?
        }
    };
    let set: JwkSet = serde_json::from_str(&text)?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue, // only RS256 and ES256 are allowed
        };
        keys.insert(kid, (DecodingKey::from_jwk(jwk)?, alg));
    }
    Ok(keys)
}

/// The development HS256 secret, created (0600) when `create` and missing.
pub fn dev_key(path: &Path, create: bool) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(hexed) => Ok(hex::decode(hexed.trim())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            use rand::RngCore;
            let mut secret = vec![0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, &hex::encode(&secret))?;
            tracing::info!(path = %path.display(), "created a development signing key");
            Ok(secret)
        }
        Err(e) => Err(anyhow::anyhow!("reading development key {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Signs a development token (the `token` command and tests).
pub fn sign_dev_token(config: &JwtConfig, claims: &Claims) -> anyhow::Result<String> {
    let secret = dev_key(&config.dev_key_file, true)?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&secret),
    )?)
}

impl Claims {
    pub fn new(
        config: &JwtConfig,
        sub: &str,
        org: &str,
        roles: &[&str],
        country: Option<&str>,
        ttl: Duration,
    ) -> Self {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: sub.to_owned(),
            org: org.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            country: country.map(str::to_owned),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: None,
            iat: now,
        }
    }
}
