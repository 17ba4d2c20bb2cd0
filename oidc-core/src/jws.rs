//! The JWS checks shared by every kind of token (access tokens in [`verify`](crate::verify),
//! ID and logout tokens in [`flow`](crate::flow)): form, header, key, signature, and the
//! registered claims every kind checks the same way.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Algorithms};
use crate::error::VerifyError;
use crate::jwks::{KeyLookup, VerifyingKey};
use crate::provider::Provider;
use crate::verify::token::{self, HeaderBuf, TokenType};

/// A token whose signature holds, with its (not yet checked) claims.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) claims: Map<String, Value>,
    pub(crate) typ: TokenType,
    pub(crate) alg: Algorithm,
    /// The key that verified the signature.
    pub(crate) key: Arc<VerifyingKey>,
}

/// Checks size, form, header, algorithm, type, key and signature, in that order.
///
/// `accept_typ` decides which header `typ` values this kind of token allows.
pub(crate) async fn verify_signature(
    provider: &Provider,
    algorithms: &Algorithms,
    max_size: usize,
    token: &str,
    accept_typ: impl Fn(TokenType) -> bool,
) -> Result<Signed, VerifyError> {
    verify_signature_typ(provider, algorithms, max_size, token, |typ| {
        accept_typ(token::token_type(typ))
    })
    .await
}

/// [`verify_signature`] for a kind of token whose acceptable `typ` values [`TokenType`] does
/// not tell apart (logout tokens): `accept_typ` sees the header `typ` as sent, or `None`.
pub(crate) async fn verify_signature_typ(
    provider: &Provider,
    algorithms: &Algorithms,
    max_size: usize,
    token: &str,
    accept_typ: impl Fn(Option<&str>) -> bool,
) -> Result<Signed, VerifyError> {
    if token.len() > max_size {
        return Err(VerifyError::TooLarge { limit: max_size });
    }
    let segments = token::split(token)?;
    let mut buf = HeaderBuf::new();
    let header = token::header(segments.header, &mut buf)?;
    if header.crit {
        return Err(VerifyError::CriticalHeader);
    }
    let alg = Algorithm::from_name(&header.alg)
        .filter(|a| algorithms.contains(*a))
        .ok_or(VerifyError::DisallowedAlgorithm)?;
    if !accept_typ(header.typ.as_deref()) {
        return Err(VerifyError::WrongTokenType);
    }
    let typ = token::token_type(header.typ.as_deref());
    let key = match provider
        .key_for(header.kid.as_deref(), alg)
        .await
        .map_err(VerifyError::KeysUnavailable)?
    {
        KeyLookup::Found(key) => key,
        KeyLookup::Ambiguous => return Err(VerifyError::NoMatchingKey),
        KeyLookup::DuplicateKid => return Err(VerifyError::DuplicateKeyId),
        KeyLookup::Missing if header.kid.is_some() => return Err(VerifyError::UnknownKey),
        KeyLookup::Missing => return Err(VerifyError::NoMatchingKey),
    };
    if !key.fits(alg) {
        return Err(VerifyError::KeyAlgorithmMismatch);
    }
    let metadata = provider
        .metadata()
        .await
        .map_err(|e| VerifyError::KeysUnavailable(crate::error::JwksError::Discovery(e)))?;
    if !algorithms.allows(alg, metadata.id_token_signing_alg_values_supported()) {
        return Err(VerifyError::DisallowedAlgorithm);
    }
    if !key.verify(alg, segments.signing_input.as_bytes(), segments.signature) {
        return Err(VerifyError::InvalidSignature);
    }
    let mut buf = token::PayloadBuf::new();
    let payload = buf
        .decode(segments.payload)
        .ok_or(VerifyError::InvalidPayload)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|_| VerifyError::InvalidPayload)?;
    Ok(Signed {
        claims,
        typ,
        alg,
        key,
    })
}

/// `iss` must be exactly `issuer`.
pub(crate) fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), VerifyError> {
    match claims.get("iss") {
        None => Err(VerifyError::MissingClaim("iss")),
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        Some(_) => Err(VerifyError::InvalidIssuer),
    }
}

/// `aud` as a list of strings.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, VerifyError> {
    match claims.get("aud") {
        None => Err(VerifyError::MissingClaim("aud")),
        Some(Value::String(a)) => Ok(vec![a.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(VerifyError::InvalidClaim("aud")),
        Some(_) => Err(VerifyError::InvalidClaim("aud")),
    }
}

/// `sub`: a non-empty string of at most 255 characters (OIDC Core §2).
pub(crate) fn check_subject(claims: &Map<String, Value>) -> Result<(), VerifyError> {
    match claims.get("sub") {
        None => Err(VerifyError::MissingClaim("sub")),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 255 => Ok(()),
        Some(_) => Err(VerifyError::InvalidClaim("sub")),
    }
}

/// A time claim: absent, or an integer number of seconds.
pub(crate) fn time(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(VerifyError::InvalidClaim(name)),
        Some(_) => Err(VerifyError::InvalidClaim(name)),
    }
}

/// `exp` (required), `nbf` and `iat` against `now` with `leeway`; returns `exp`.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    leeway: i64,
    require_iat: bool,
) -> Result<i64, VerifyError> {
    let exp = time(claims, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
    if now.saturating_sub(leeway) >= exp {
        return Err(VerifyError::Expired);
    }
    if let Some(nbf) = time(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(VerifyError::NotYetValid);
    }
    match time(claims, "iat")? {
        Some(iat) if iat > now.saturating_add(leeway) => Err(VerifyError::IssuedInFuture),
        None if require_iat => Err(VerifyError::MissingClaim("iat")),
        _ => Ok(exp),
    }
}
