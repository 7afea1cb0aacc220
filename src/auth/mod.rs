//! Authentication: bearer JWTs become an [`Actor`].

mod actor;
mod jwt;

pub use actor::{Actor, Purpose, Role};
pub use jwt::{dev_key, sign_dev_token, AuthError, Claims, JwtConfig, Verifier};

use crate::db::OrgCode;

/// Turns verified claims and the purpose header into an actor; an unknown
/// organisation, role or country is an authentication failure (docs/access.md).
pub fn actor_from_claims(claims: Claims, purpose: Purpose) -> Result<Actor, AuthError> {
    let org: OrgCode = claims
        .org
        .parse()
        .map_err(|_| AuthError::Claim(format!("unknown organisation {:?}", claims.org)))?;
    let mut roles = claims
        .roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|r| AuthError::Claim(format!("unknown role {r:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    let country = match claims.country {
        None => "FI".to_owned(),
        Some(c) => crate::validate::country(&c)
            .map_err(|_| AuthError::Claim(format!("unknown country {c:?}")))?,
    };
    if claims.sub.trim().is_empty() {
        return Err(AuthError::Claim("empty sub".into()));
    }
    Ok(Actor { sub: claims.sub, org, roles, country, purpose })
}

/// `X-Processing-Purpose`: absent means `CUSTOMER_RELATIONSHIP`.
pub fn parse_purpose(header: Option<&str>) -> Result<Purpose, String> {
    match header.map(str::trim) {
        None => Ok(Purpose::CustomerRelationship),
        Some("") => Err("X-Processing-Purpose is empty; leave it out for CUSTOMER_RELATIONSHIP or name a purpose".to_owned()),
        Some(p) => p.parse().map_err(|p| format!("unknown processing purpose {p:?}; expected one of CUSTOMER_RELATIONSHIP, MARKETING, DATA_SUBJECT_REQUEST, SECURITY_AUDIT")),
    }
}
