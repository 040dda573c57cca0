//! Signature verification of inbound deliveries, on the raw body bytes,
//! before anything parses them.
//!
//! - Standard Webhooks: `webhook-signature` holds space-separated
//!   `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`; any one
//!   matching any configured secret verifies (rotation). Other version
//!   prefixes are ignored. `webhook-timestamp` must be within
//!   [`TOLERANCE_SECS`] of now, either way.
//! - `sha256`: `X-Signature-256` (or GitHub's `X-Hub-Signature-256`) holds
//!   `sha256=<hex HMAC-SHA256(secret, body)>`.
//!
//! Tags are compared with `hmac`'s `verify_slice`: the length first (so an
//! empty or truncated signature never matches — one reference implementation
//! once accepted `v1,`), then the bytes in constant time.

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;

use super::config::Secret;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Signatures are canonical base64, padding included, as the reference
/// libraries write (and compare) them.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How far a `webhook-timestamp` may be from now, into the past or the future.
pub const TOLERANCE_SECS: i64 = 300;
/// Longest `webhook-id` accepted.
const MAX_ID: usize = 256;

pub const ID: &str = "webhook-id";
pub const TIMESTAMP: &str = "webhook-timestamp";
pub const SIGNATURE: &str = "webhook-signature";
pub const SHA256_SIGNATURE: &str = "x-signature-256";
const GITHUB_SIGNATURE: &str = "x-hub-signature-256";

/// Why a delivery was refused before its body was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `{0}` header is malformed")]
    MalformedHeader(&'static str),
    #[error("the delivery's timestamp is more than {TOLERANCE_SECS} seconds old")]
    TooOld,
    #[error("the delivery's timestamp is more than {TOLERANCE_SECS} seconds in the future")]
    TooNew,
    #[error("no signature matches a configured secret")]
    BadSignature,
}

impl Rejection {
    /// The error code answered and audited (`reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader(_) => "malformed_header",
            Self::TooOld => "timestamp_too_old",
            Self::TooNew => "timestamp_in_future",
            Self::BadSignature => "invalid_signature",
        }
    }

    /// Header problems are the sender's malformed request (400); the rest
    /// fail authentication (401).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::MissingHeader(_) | Self::MalformedHeader(_))
    }
}

/// A verified delivery's id, for replay detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `webhook-id`, or for the `sha256` scheme `sha256:<hex of the body>`:
    /// its only signed content is the body, so an unsigned id header could
    /// be changed by whoever replays it.
    pub id: String,
    /// Unix seconds of `webhook-timestamp` (Standard Webhooks only).
    pub timestamp: Option<i64>,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, Rejection> {
    headers.get(name).map(|v| v.to_str().map_err(|_| Rejection::MalformedHeader(name))).transpose()
}

fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Rejection> {
    header(headers, name)?.ok_or(Rejection::MissingHeader(name))
}

/// The `webhook-id` header if present and well-formed (for the audit record
/// of a refused delivery).
pub fn claimed_id(headers: &HeaderMap) -> Option<String> {
    header(headers, ID).ok().flatten().map(str::to_owned)
}

fn mac(secret: &Secret) -> HmacSha256 {
    // INVARIANT: HMAC takes keys of any length; `new_from_slice` cannot fail.
    match HmacSha256::new_from_slice(secret.bytes()) {
        Ok(mac) => mac,
        Err(_) => HmacSha256::new(&Default::default()),
    }
}

fn standard_mac(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = mac(secret);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1,<base64>`: the Standard Webhooks signature of a delivery.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = standard_mac(secret, id, &timestamp.to_string(), body).finalize().into_bytes();
    format!("v1,{}", BASE64.encode(tag))
}

/// Verifies a Standard Webhooks delivery at `now` (Unix seconds).
pub fn verify_standard(secrets: &[Secret], headers: &HeaderMap, body: &[u8], now: i64) -> Result<Verified, Rejection> {
    let id = required(headers, ID)?;
    if id.is_empty() || id.len() > MAX_ID || id.contains(char::is_whitespace) {
        return Err(Rejection::MalformedHeader(ID));
    }
    let timestamp = required(headers, TIMESTAMP)?;
    let seconds: i64 = (!timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()))
        .then(|| timestamp.parse().ok())
        .flatten()
        .ok_or(Rejection::MalformedHeader(TIMESTAMP))?;
    if now.saturating_sub(seconds) > TOLERANCE_SECS {
        return Err(Rejection::TooOld);
    }
    if seconds.saturating_sub(now) > TOLERANCE_SECS {
        return Err(Rejection::TooNew);
    }
    let signatures = required(headers, SIGNATURE)?;
    let tags: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect();
    let matches = tags
        .iter()
        .any(|tag| secrets.iter().any(|secret| standard_mac(secret, id, timestamp, body).verify_slice(tag).is_ok()));
    if !matches {
        return Err(Rejection::BadSignature);
    }
    Ok(Verified { id: id.to_owned(), timestamp: Some(seconds) })
}

/// Verifies a `sha256=<hex>` delivery.
pub fn verify_sha256(secrets: &[Secret], headers: &HeaderMap, body: &[u8]) -> Result<Verified, Rejection> {
    let value = match header(headers, SHA256_SIGNATURE)? {
        Some(v) => v,
        None => header(headers, GITHUB_SIGNATURE)?.ok_or(Rejection::MissingHeader(SHA256_SIGNATURE))?,
    };
    let tag = value.trim().strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()).ok_or(Rejection::BadSignature)?;
    let matches = secrets.iter().any(|secret| {
        let mut mac = mac(secret);
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    });
    if !matches {
        return Err(Rejection::BadSignature);
    }
    Ok(Verified { id: format!("sha256:{}", hex::encode(sha2::Sha256::digest(body))), timestamp: None })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// The Standard Webhooks test vectors (field notes).
    struct Vector {
        secret: &'static str,
        id: &'static str,
        timestamp: i64,
        body: &'static str,
        signature: &'static str,
    }

    const VECTORS: [Vector; 2] = [
        Vector {
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1614265330,
            body: r#"{"test": 2432232314}"#,
            signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        Vector {
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            timestamp: 1649367553,
            body: r#"{"email":"test@example.com","username":"test_user"}"#,
            signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        },
    ];

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID, HeaderValue::from_str(id).unwrap());
        h.insert(TIMESTAMP, HeaderValue::from_str(timestamp).unwrap());
        h.insert(SIGNATURE, HeaderValue::from_str(signature).unwrap());
        h
    }

    fn secret(v: &Vector) -> Vec<Secret> {
        vec![Secret::standard(v.secret).unwrap()]
    }

    fn check(v: &Vector, signature: &str, body: &str, now: i64) -> Result<Verified, Rejection> {
        verify_standard(&secret(v), &headers(v.id, &v.timestamp.to_string(), signature), body.as_bytes(), now)
    }

    #[test]
    fn the_published_vectors_verify_and_sign() {
        for v in &VECTORS {
            let verified = check(v, v.signature, v.body, v.timestamp).unwrap();
            assert_eq!(verified, Verified { id: v.id.into(), timestamp: Some(v.timestamp) });
            assert_eq!(sign(&secret(v)[0], v.id, v.timestamp, v.body.as_bytes()), v.signature);
        }
    }

    #[test]
    fn tampering_wrong_secrets_and_bad_signatures_are_refused() {
        let [v, w] = &VECTORS;
        assert_eq!(check(v, v.signature, r#"{"test": 2432232315}"#, v.timestamp), Err(Rejection::BadSignature));
        // The other vector's secret.
        let wrong = verify_standard(
            &secret(w),
            &headers(v.id, &v.timestamp.to_string(), v.signature),
            v.body.as_bytes(),
            v.timestamp,
        );
        assert_eq!(wrong, Err(Rejection::BadSignature));
        // Another id or timestamp is other signed content.
        let other_id =
            verify_standard(&secret(v), &headers("msg_x", "1614265330", v.signature), v.body.as_bytes(), v.timestamp);
        assert_eq!(other_id, Err(Rejection::BadSignature));
        let t = v.timestamp + 1;
        let other_ts = verify_standard(&secret(v), &headers(v.id, &t.to_string(), v.signature), v.body.as_bytes(), t);
        assert_eq!(other_ts, Err(Rejection::BadSignature));
        // Empty, truncated (its padding, four characters, a whole byte), padded, not base64.
        let unpadded = &v.signature[..v.signature.len() - 1];
        let truncated = &v.signature[..v.signature.len() - 4];
        let short_tag = BASE64.encode(&BASE64.decode(&v.signature[3..]).unwrap()[..31]);
        let long_tag = BASE64.encode([BASE64.decode(&v.signature[3..]).unwrap(), vec![0]].concat());
        for bad in [
            "v1,",
            "v1, ",
            unpadded,
            truncated,
            &format!("v1,{short_tag}"),
            &format!("v1,{long_tag}"),
            "v1,!!!!",
            "",
            " ",
        ] {
            assert_eq!(check(v, bad, v.body, v.timestamp), Err(Rejection::BadSignature), "{bad:?}");
        }
        assert_eq!(check(v, &v.signature.replace("v1,", "v2,"), v.body, v.timestamp), Err(Rejection::BadSignature));
    }

    #[test]
    fn several_signatures_and_several_secrets_rotate() {
        let [v, w] = &VECTORS;
        let list = format!("v2,abc v1,Zm9v {} v1a,{}", v.signature, &v.signature[3..]);
        assert!(check(v, &list, v.body, v.timestamp).is_ok());
        let both = [secret(w).remove(0), secret(v).remove(0)];
        let h = headers(v.id, &v.timestamp.to_string(), v.signature);
        assert!(verify_standard(&both, &h, v.body.as_bytes(), v.timestamp).is_ok());
        let h = headers(w.id, &w.timestamp.to_string(), w.signature);
        assert!(verify_standard(&both, &h, w.body.as_bytes(), w.timestamp).is_ok());
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes_either_way() {
        let v = &VECTORS[0];
        for now in [v.timestamp - 300, v.timestamp + 300] {
            assert!(check(v, v.signature, v.body, now).is_ok(), "{now}");
        }
        assert_eq!(check(v, v.signature, v.body, v.timestamp + 301), Err(Rejection::TooOld));
        assert_eq!(check(v, v.signature, v.body, v.timestamp - 301), Err(Rejection::TooNew));
        for bad in ["", "-1", "1614265330.5", " 1614265330", "99999999999999999999999"] {
            let mut h = headers(v.id, "0", v.signature);
            h.insert(TIMESTAMP, HeaderValue::from_str(bad).unwrap());
            let r = verify_standard(&secret(v), &h, v.body.as_bytes(), v.timestamp);
            assert_eq!(r, Err(Rejection::MalformedHeader(TIMESTAMP)), "{bad:?}");
        }
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = &VECTORS[0];
        for name in [ID, TIMESTAMP, SIGNATURE] {
            let mut h = headers(v.id, &v.timestamp.to_string(), v.signature);
            h.remove(name);
            let r = verify_standard(&secret(v), &h, v.body.as_bytes(), v.timestamp);
            assert_eq!(r, Err(Rejection::MissingHeader(name)));
            assert!(r.unwrap_err().is_malformed());
        }
        let long = "m".repeat(MAX_ID + 1);
        for id in ["", "a b", &long] {
            let h = headers(id, &v.timestamp.to_string(), v.signature);
            assert_eq!(verify_standard(&secret(v), &h, b"", v.timestamp), Err(Rejection::MalformedHeader(ID)));
        }
        let mut h = headers(v.id, &v.timestamp.to_string(), v.signature);
        h.insert(SIGNATURE, HeaderValue::from_bytes(b"v1,\xff").unwrap());
        let r = verify_standard(&secret(v), &h, v.body.as_bytes(), v.timestamp);
        assert_eq!(r, Err(Rejection::MalformedHeader(SIGNATURE)));
    }

    #[test]
    fn the_github_style_vector_verifies() {
        let secrets = [Secret::new("It's a Secret to Everybody".as_bytes())];
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let with = |name: &'static str, value: &str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_str(value).unwrap());
            h
        };
        let verified =
            verify_sha256(&secrets, &with(SHA256_SIGNATURE, &format!("sha256={hex}")), b"Hello, World!").unwrap();
        assert!(verified.id.starts_with("sha256:") && verified.timestamp.is_none());
        let upper = format!("sha256={}", hex.to_uppercase());
        assert!(verify_sha256(&secrets, &with(GITHUB_SIGNATURE, &upper), b"Hello, World!").is_ok());
        for bad in ["sha256=", "sha256=757107", &format!("sha1={hex}"), &format!("sha256={hex}00"), "sha256=zz"] {
            let r = verify_sha256(&secrets, &with(SHA256_SIGNATURE, bad), b"Hello, World!");
            assert_eq!(r, Err(Rejection::BadSignature), "{bad:?}");
        }
        let good = with(SHA256_SIGNATURE, &format!("sha256={hex}"));
        assert_eq!(verify_sha256(&secrets, &good, b"Hello, World?"), Err(Rejection::BadSignature));
        assert_eq!(verify_sha256(&secrets, &HeaderMap::new(), b""), Err(Rejection::MissingHeader(SHA256_SIGNATURE)));
    }
}
