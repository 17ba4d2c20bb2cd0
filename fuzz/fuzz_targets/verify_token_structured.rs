//! The structured variant of `verify_token`: a valid token whose header and payload JSON the
//! fuzzer edits (members added, replaced or removed, or the whole JSON text replaced) before
//! it is re-encoded, then signed again with the committed key or left with a signature that no
//! longer fits. Re-signing lets the fuzzer reach the claim checks, which run only after the
//! signature holds.
//!
//! Must never panic; an accepted token must deserve it (`assert_deserved`).

#![no_main]

use arbitrary::Arbitrary;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use oidc_core::AdditionalClaims;
use oidc_fuzz::{
    ISSUER, assert_deserved, b64, block_on, sign, tokens, valid_claims, valid_header, verifier,
};
use serde_json::{Map, Value};

/// Member names worth trying, besides arbitrary ones.
const NAMES: &[&str] = &[
    "alg",
    "kid",
    "typ",
    "crit",
    "jku",
    "jwk",
    "x5u",
    "x5c",
    "cty",
    "b64",
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "scp",
    "roles",
    "groups",
    "realm_access",
    "resource_access",
    "client_id",
    "azp",
    "nonce",
    "at_hash",
    "c_hash",
    "events",
    "sid",
    "auth_time",
    "acr",
    "amr",
    "cnf",
];

/// String values worth trying, besides arbitrary ones.
const STRINGS: &[&str] = &[
    "RS256",
    "ES256",
    "PS256",
    "HS256",
    "none",
    "None",
    "EdDSA",
    "rsa1-RS256",
    "ec1-ES256",
    "at+jwt",
    "application/at+jwt",
    "AT+JWT",
    "JWT",
    "jwt",
    "application/jwt",
    "logout+jwt",
    "id_token+jwt",
    "Bearer",
    "ID",
    "Refresh",
    "https://id.example.com",
    "https://id.example.com/",
    "https://api.example.com",
    "user-1",
    "",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// Near the verifier's clock: `NOW + offset`.
    Time(i32),
    Float(f64),
    Known(u8),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(Name, Json)>),
}

impl Json {
    fn get(&self, depth: u8) -> Value {
        if depth > 4 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Time(offset) => Value::from(oidc_fuzz::NOW + i64::from(*offset)),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Known(i) => Value::from(STRINGS[*i as usize % STRINGS.len()]),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Array(items) => Value::Array(items.iter().map(|v| v.get(depth + 1)).collect()),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(n, v)| (n.get(), v.get(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(Name, Json),
    Remove(Name),
}

#[derive(Arbitrary, Debug)]
enum Part {
    /// The valid JSON with these edits.
    Edited(Vec<Edit>),
    /// JSON text of the fuzzer's choice.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    /// Signed again with the committed key for RS256.
    ResignRs256,
    /// Signed again with the committed key for ES256.
    ResignEs256,
    /// The signature of the original, unedited token.
    Original,
    /// An empty signature segment.
    Empty,
    /// Bytes of the fuzzer's choice, base64url-encoded.
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    es256: bool,
    header: Part,
    payload: Part,
    signature: Signature,
}

fn edited(mut map: Map<String, Value>, part: &Part) -> Vec<u8> {
    match part {
        Part::Raw(bytes) => bytes.clone(),
        Part::Edited(edits) => {
            for edit in edits {
                match edit {
                    Edit::Set(name, value) => {
                        map.insert(name.get(), value.get(0));
                    }
                    Edit::Remove(name) => {
                        map.remove(&name.get());
                    }
                }
            }
            serde_json::to_vec(&map).unwrap()
        }
    }
}

fuzz_target!(|input: Input| {
    let alg = if input.es256 {
        Algorithm::ES256
    } else {
        Algorithm::RS256
    };
    let header = edited(valid_header(alg, true), &input.header);
    let payload = edited(valid_claims(ISSUER), &input.payload);
    let signing_input = format!("{}.{}", b64(&header), b64(&payload));
    let signature = match &input.signature {
        Signature::ResignRs256 => sign(&signing_input, Algorithm::RS256),
        Signature::ResignEs256 => sign(&signing_input, Algorithm::ES256),
        Signature::Original => {
            let original = if input.es256 {
                &tokens().es256
            } else {
                &tokens().rs256
            };
            original.rsplit('.').next().unwrap_or_default().to_owned()
        }
        Signature::Empty => String::new(),
        Signature::Bytes(bytes) => b64(bytes),
    };
    let token = format!("{signing_input}.{signature}");
    if block_on(verifier().verify::<AdditionalClaims>(&token)).is_ok() {
        assert_deserved(&token, ISSUER);
    }
});
