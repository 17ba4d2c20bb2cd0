//! The compact JWS form: splitting a token and reading its header, before any key is used.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::VerifyError;

/// The three segments of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`: what the signature covers.
    pub(crate) signing_input: &'a str,
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a token into its segments: exactly three, each non-empty base64url without padding.
pub(crate) fn split(token: &str) -> Result<Segments<'_>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    if !(is_b64url(header) && is_b64url(payload) && is_b64url(signature)) {
        return Err(VerifyError::Malformed);
    }
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .ok_or(VerifyError::Malformed)?;
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// The JOSE header members this library reads. Unknown members are ignored; `jku`, `x5u`,
/// `jwk` and `x5c` are never used (keys come only from the provider's JWKS). A duplicated
/// member makes the header invalid. The strings borrow from the decoded header unless they
/// contain escapes.
#[derive(Debug, Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) typ: Option<Cow<'a, str>>,
    /// Whether a `crit` member is present, whatever its value (even `null`).
    #[serde(default, deserialize_with = "present")]
    pub(crate) crit: bool,
}

/// `true` for any value, so that `"crit": null` counts as present.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

pub(crate) fn decode_b64(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// Space to decode a segment into: on the stack up to `N` bytes, on the heap beyond.
pub(crate) struct DecodeBuf<const N: usize> {
    stack: [u8; N],
    heap: Vec<u8>,
}

impl<const N: usize> DecodeBuf<N> {
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; N],
            heap: Vec::new(),
        }
    }

    /// Decodes a base64url `segment` into this buffer.
    pub(crate) fn decode(&mut self, segment: &str) -> Option<&[u8]> {
        if segment.len() / 4 * 3 + 3 <= N {
            let len = URL_SAFE_NO_PAD
                .decode_slice(segment, &mut self.stack)
                .ok()?;
            self.stack.get(..len)
        } else {
            self.heap = decode_b64(segment)?;
            Some(self.heap.as_slice())
        }
    }
}

/// Room for a typical header.
pub(crate) type HeaderBuf = DecodeBuf<512>;

/// Room for a typical payload.
pub(crate) type PayloadBuf = DecodeBuf<2048>;

/// Decodes and parses the header segment into `buf`; the header's strings borrow from it
/// (unless they contain escapes), so reading a typical header does not allocate.
pub(crate) fn header<'b>(segment: &str, buf: &'b mut HeaderBuf) -> Result<Header<'b>, VerifyError> {
    let bytes = buf.decode(segment).ok_or(VerifyError::InvalidHeader)?;
    // A JOSE header is a JSON object (RFC 7515 §4); serde's derived struct visitor would
    // also take a JSON array (`["RS256"]`) as the fields in order.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(VerifyError::InvalidHeader);
    }
    serde_json::from_slice(bytes).map_err(|_| VerifyError::InvalidHeader)
}

/// What a header `typ` says about the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    /// `at+jwt` or `application/at+jwt` (RFC 9068).
    AccessToken,
    /// `JWT`, or no `typ` at all: any kind of token.
    Generic,
    /// Any other type (`logout+jwt`, `id_token+jwt`, `secevent+jwt`…).
    Other,
}

/// A `typ` value without its optional `application/` prefix (RFC 7515 §4.1.9), whose case
/// does not matter.
fn media_subtype(typ: &str) -> &str {
    typ.get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| typ.get(12..).unwrap_or_default())
}

pub(crate) fn token_type(typ: Option<&str>) -> TokenType {
    let Some(typ) = typ else {
        return TokenType::Generic;
    };
    let media = media_subtype(typ);
    if media.eq_ignore_ascii_case("at+jwt") {
        TokenType::AccessToken
    } else if media.eq_ignore_ascii_case("jwt") {
        TokenType::Generic
    } else {
        TokenType::Other
    }
}

/// Whether a header `typ` names a logout token: `logout+jwt` or `application/logout+jwt`, in
/// any case (OIDC Back-Channel Logout 1.0 §2.4).
pub(crate) fn is_logout_type(typ: &str) -> bool {
    media_subtype(typ).eq_ignore_ascii_case("logout+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_requires_three_b64url_segments() {
        assert!(split("a.b.c").is_ok());
        for bad in [
            "", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=", "a b.b.c", "a.b.c\n",
            "a.b+.c", "a.b/.c",
        ] {
            assert!(matches!(split(bad), Err(VerifyError::Malformed)), "{bad:?}");
        }
        let s = split("hh.pp.ss").unwrap();
        assert_eq!(s.signing_input, "hh.pp");
        assert_eq!((s.header, s.payload, s.signature), ("hh", "pp", "ss"));
    }

    #[test]
    fn header_rejects_duplicates_and_non_objects() {
        let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
        assert!(header(&enc(r#"{"alg":"RS256","kid":"k"}"#), &mut HeaderBuf::new()).is_ok());
        for bad in [
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"kid":"k"}"#,
            r#"["RS256"]"#,
            r#"{"alg":5}"#,
            "not json",
        ] {
            assert!(header(&enc(bad), &mut HeaderBuf::new()).is_err(), "{bad}");
        }
        assert!(header("!!!", &mut HeaderBuf::new()).is_err());
        // A header too long for the stack buffer, with an escaped kid.
        let long = format!(
            r#"{{"alg":"RS256","kid":"k\u0041","x":"{}"}}"#,
            "y".repeat(900)
        );
        let mut buf = HeaderBuf::new();
        let h = header(&enc(&long), &mut buf).unwrap();
        assert_eq!((&*h.alg, h.kid.as_deref()), ("RS256", Some("kA")));
    }

    #[test]
    fn token_types() {
        use TokenType::*;
        for (typ, want) in [
            (None, Generic),
            (Some("JWT"), Generic),
            (Some("jwt"), Generic),
            (Some("application/jwt"), Generic),
            (Some("at+jwt"), AccessToken),
            (Some("AT+JWT"), AccessToken),
            (Some("application/at+jwt"), AccessToken),
            (Some("logout+jwt"), Other),
            (Some("id_token+jwt"), Other),
            (Some("application/"), Other),
            (Some(""), Other),
        ] {
            assert_eq!(token_type(typ), want, "{typ:?}");
        }
    }

    #[test]
    fn logout_types() {
        for typ in [
            "logout+jwt",
            "LOGOUT+JWT",
            "application/logout+jwt",
            "Application/Logout+JWT",
        ] {
            assert!(is_logout_type(typ), "{typ}");
        }
        for typ in [
            "",
            "jwt",
            "at+jwt",
            "application/",
            "logout+jwt ",
            "application/application/logout+jwt",
            "secevent+jwt",
            "logout",
        ] {
            assert!(!is_logout_type(typ), "{typ}");
        }
    }
}
