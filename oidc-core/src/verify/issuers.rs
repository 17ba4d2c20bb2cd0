//! Several issuers behind one verifier: the token's exact `iss` chooses the verifier, which
//! then checks everything. See the [module docs](super#several-issuers).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use serde::Deserialize;

use super::Config;
use super::token::{self, PayloadBuf};
use crate::error::{ConfigError, JwksError, VerifyError};

/// The verifiers of several issuers (at least two, with distinct issuers).
#[derive(Clone)]
pub(super) struct Issuers {
    /// The first verifier given: non-empty by construction.
    first: Arc<Config>,
    others: Vec<Arc<Config>>,
    /// The same verifiers, sorted by issuer, for the lookup.
    pub(super) by_issuer: Box<[Arc<Config>]>,
    /// The largest size cap of all: the cap before the `iss` is read.
    pub(super) max_token_size: usize,
}

impl Issuers {
    /// Combines `first` and `others`.
    ///
    /// # Errors
    ///
    /// The same issuer twice.
    pub(super) fn new(first: Arc<Config>, others: Vec<Arc<Config>>) -> Result<Self, ConfigError> {
        let mut set = Self {
            first,
            others,
            by_issuer: Box::default(),
            max_token_size: 0,
        };
        set.index();
        let twice = set.by_issuer.windows(2).find_map(|pair| match pair {
            [a, b] if a.provider.issuer() == b.provider.issuer() => Some(a.provider.issuer()),
            _ => None,
        });
        if let Some(issuer) = twice {
            return Err(ConfigError::DuplicateIssuer {
                issuer: issuer.to_owned(),
            });
        }
        Ok(set)
    }

    /// Rebuilds the lookup index and the size cap from the verifiers.
    fn index(&mut self) {
        let mut sorted: Vec<Arc<Config>> = self.configs().cloned().collect();
        sorted.sort_by(|a, b| a.provider.issuer().cmp(b.provider.issuer()));
        self.max_token_size = sorted.iter().map(|c| c.max_token_size).max().unwrap_or(0);
        self.by_issuer = sorted.into_boxed_slice();
    }

    pub(super) fn first(&self) -> &Arc<Config> {
        &self.first
    }

    pub(super) fn others(&self) -> &[Arc<Config>] {
        &self.others
    }

    /// Every verifier, in the order given.
    pub(super) fn configs(&self) -> impl Iterator<Item = &Arc<Config>> {
        std::iter::once(&self.first).chain(&self.others)
    }

    /// Applies `change` to every verifier. The issuers stay as they are.
    pub(super) fn update(&mut self, mut change: impl FnMut(&mut Arc<Config>)) {
        // Without the index's references, configurations held by no other handle are changed
        // in place rather than copied.
        self.by_issuer = Box::default();
        change(&mut self.first);
        self.others.iter_mut().for_each(&mut change);
        self.index();
    }

    /// The verifier for `token`'s issuer, chosen by its unverified `iss` after the size cap
    /// and the split into segments; nothing else of the token is read.
    ///
    /// # Errors
    ///
    /// [`VerifyError::TooLarge`] and [`VerifyError::Malformed`] as a single verifier would
    /// answer; [`VerifyError::InvalidPayload`] when the payload is not a JSON object with at
    /// most one `iss`; [`VerifyError::MissingClaim`] without `iss`; and
    /// [`VerifyError::InvalidIssuer`] when `iss` is not a string or not exactly a configured
    /// issuer.
    pub(super) fn select(&self, token: &str) -> Result<&Arc<Config>, VerifyError> {
        if token.len() > self.max_token_size {
            return Err(VerifyError::TooLarge {
                limit: self.max_token_size,
            });
        }
        let segments = token::split(token)?;
        let mut buf = PayloadBuf::new();
        let issuer = unverified_issuer(segments.payload, &mut buf)?;
        self.by_issuer
            .binary_search_by(|c| c.provider.issuer().cmp(&issuer))
            .ok()
            .and_then(|i| self.by_issuer.get(i))
            .ok_or(VerifyError::InvalidIssuer)
    }

    /// Loads every provider's metadata and keys, all at once; the first error in the order
    /// given.
    pub(super) async fn warm_up(&self) -> Result<(), JwksError> {
        type WarmUp<'a> = Pin<Box<dyn Future<Output = Result<(), JwksError>> + Send + 'a>>;
        let mut pending: Vec<(WarmUp<'_>, Option<Result<(), JwksError>>)> = self
            .configs()
            .map(|c| (Box::pin(c.provider.warm_up()) as WarmUp<'_>, None))
            .collect();
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (future, outcome) in &mut pending {
                if outcome.is_none() {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(result) => *outcome = Some(result),
                        Poll::Pending => done = false,
                    }
                }
            }
            if done { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        pending
            .into_iter()
            .find_map(|(_, outcome)| outcome.and_then(Result::err))
            .map_or(Ok(()), Err)
    }
}

/// The only payload member read before the signature is checked.
#[derive(Deserialize)]
struct IssuerOnly<'a> {
    /// A duplicated `iss` makes the payload invalid (serde's derived visitor refuses it).
    #[serde(default, borrow)]
    iss: Iss<'a>,
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Iss<'a> {
    /// A string, borrowed from the decoded payload unless it contains escapes.
    Text(#[serde(borrow)] Cow<'a, str>),
    /// Any other JSON value, `null` included.
    Other(serde::de::IgnoredAny),
    /// No `iss` member.
    #[default]
    #[serde(skip)]
    Absent,
}

/// The unverified `iss` of a payload segment, decoded into `buf`.
fn unverified_issuer<'b>(
    segment: &str,
    buf: &'b mut PayloadBuf,
) -> Result<Cow<'b, str>, VerifyError> {
    let bytes = buf.decode(segment).ok_or(VerifyError::InvalidPayload)?;
    // A JWT claims set is a JSON object; serde's derived visitor would also take an array.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(VerifyError::InvalidPayload);
    }
    let payload: IssuerOnly<'b> =
        serde_json::from_slice(bytes).map_err(|_| VerifyError::InvalidPayload)?;
    match payload.iss {
        Iss::Text(issuer) => Ok(issuer),
        Iss::Other(_) => Err(VerifyError::InvalidIssuer),
        Iss::Absent => Err(VerifyError::MissingClaim("iss")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn iss(payload: &str) -> Result<String, VerifyError> {
        let segment = URL_SAFE_NO_PAD.encode(payload);
        unverified_issuer(&segment, &mut PayloadBuf::new()).map(Cow::into_owned)
    }

    #[test]
    fn unverified_issuer_reads_only_a_single_string_iss() {
        assert_eq!(
            iss(r#"{"iss":"https://a","sub":"x"}"#).unwrap(),
            "https://a"
        );
        assert_eq!(
            iss(r#" {"sub":{"iss":"no"},"iss":"https:\/\/a"}"#).unwrap(),
            "https://a"
        );
        assert_eq!(iss(r#"{"i\u0073s":"https://a"}"#).unwrap(), "https://a");
        let long = format!(r#"{{"iss":"https://a","pad":"{}"}}"#, "x".repeat(4000));
        assert_eq!(iss(&long).unwrap(), "https://a");
        for (payload, want) in [
            (r#"{"sub":"x"}"#, "MissingClaim"),
            (r#"{"iss":null}"#, "InvalidIssuer"),
            (r#"{"iss":5}"#, "InvalidIssuer"),
            (r#"{"iss":["https://a"]}"#, "InvalidIssuer"),
            (r#"{"iss":{"x":"https://a"}}"#, "InvalidIssuer"),
            (r#"{"iss":"https://a","iss":"https://b"}"#, "InvalidPayload"),
            (r#"["https://a"]"#, "InvalidPayload"),
            (r#""https://a""#, "InvalidPayload"),
            (r#"{"iss":"https://a"} x"#, "InvalidPayload"),
            (r#"{"iss":"https://a""#, "InvalidPayload"),
            ("", "InvalidPayload"),
        ] {
            let got = format!("{:?}", iss(payload).unwrap_err());
            assert!(got.starts_with(want), "{payload}: {got}");
        }
        assert!(matches!(
            unverified_issuer("!!", &mut PayloadBuf::new()),
            Err(VerifyError::InvalidPayload)
        ));
    }
}
