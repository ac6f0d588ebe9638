//! OpenID Connect's signatures (SPEC §9): an environment's RSA 2048-bit signing key, the ID and
//! logout tokens it signs as compact JWS with RS256 (RFC 7515, 7518 §3.3), the public half as
//! a JWK (RFC 7517) named by its thumbprint (RFC 7638), and the check of a token we signed
//! (an `id_token_hint`).
//!
//! Every cryptographic operation is `aws-lc-rs`'s: key generation, PKCS#1 v1.5 signing in
//! constant time (the Marvin attack, RUSTSEC-2023-0071, concerns the `rsa` crate, which is not
//! in the tree) and verification. What is ours is the compact serialization around it —
//! base64url of a fixed header, of the claims' JSON and of the signature — and the header
//! checks on the way in: `alg` must be `RS256` and `kid` one of ours; nothing in a presented
//! header chooses an algorithm or a key.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair, KeySize},
    signature::{self, KeyPair as _, RsaPublicKeyComponents},
};
use data_encoding::BASE64URL_NOPAD;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::SecretBytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoseError {
    /// The key could not be made or read back (a bug, or the sealed bytes were changed).
    #[error("the signing key is not usable: {0}")]
    Key(&'static str),
    /// Signing failed (a bug in a key we accepted).
    #[error("signing failed")]
    Sign,
    /// A presented token is not one we signed with a published key, or is malformed.
    #[error("the token is not valid")]
    Invalid,
}

/// An environment's signing key: the private key, parsed once, and its public JWK.
pub struct SigningKey {
    pair: KeyPair,
    public: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

/// The public half of a signing key, as `jwks` publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// The RFC 7638 thumbprint of the key (base64url of a SHA-256).
    pub kid: String,
    /// The modulus, big-endian, base64url.
    pub n: String,
    /// The public exponent, big-endian, base64url.
    pub e: String,
}

impl PublicJwk {
    fn of(pair: &KeyPair) -> Self {
        let c = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let n = BASE64URL_NOPAD.encode(&c.n);
        let e = BASE64URL_NOPAD.encode(&c.e);
        Self {
            kid: thumbprint(&n, &e),
            n,
            e,
        }
    }

    /// The JWK as JSON (`kty`, `use`, `alg`, `kid`, `n`, `e`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "kid": self.kid, "n": self.n, "e": self.e,
        })
    }

    /// Read back a JWK stored by [`Self::to_json`].
    pub fn from_json(v: &Value) -> Option<Self> {
        let field = |k: &str| v.get(k)?.as_str().map(str::to_owned);
        Some(Self {
            kid: field("kid")?,
            n: field("n")?,
            e: field("e")?,
        })
    }
}

impl SigningKey {
    /// A new RSA 2048-bit key, and its PKCS#8 form to seal and store.
    pub fn generate() -> Result<(Self, SecretBytes), JoseError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::Key("generate"))?;
        let der = pair
            .as_der()
            .map_err(|_| JoseError::Key("serialize"))?
            .as_ref()
            .to_vec();
        let public = PublicJwk::of(&pair);
        Ok((Self { pair, public }, SecretBytes::new(der)))
    }

    /// A key from its PKCS#8 form.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, JoseError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| JoseError::Key("parse"))?;
        let public = PublicJwk::of(&pair);
        Ok(Self { pair, public })
    }

    pub fn public(&self) -> &PublicJwk {
        &self.public
    }

    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// `claims` as a compact JWS signed RS256, `typ` in the header (`JWT`, or `logout+jwt`
    /// for a logout token).
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Result<String, JoseError> {
        let header = serde_json::json!({"alg": "RS256", "typ": typ, "kid": self.public.kid});
        let header = serde_json::to_vec(&header).map_err(|_| JoseError::Sign)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JoseError::Sign)?;
        let mut jws = BASE64URL_NOPAD.encode(&header);
        jws.push('.');
        jws.push_str(&BASE64URL_NOPAD.encode(&claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jws.as_bytes(),
                &mut signature,
            )
            .map_err(|_| JoseError::Sign)?;
        jws.push('.');
        jws.push_str(&BASE64URL_NOPAD.encode(&signature));
        Ok(jws)
    }
}

/// The longest token [`verify`] reads: ours are well under 2 KiB.
const MAX_JWS: usize = 8192;

/// The claims of `jws` if it is a compact JWS signed RS256 by one of `keys` (found by `kid`).
/// Claims are returned unchecked: the caller checks `iss`, `aud` and the times it cares about.
pub fn verify(jws: &str, keys: &[PublicJwk]) -> Result<Value, JoseError> {
    if jws.len() > MAX_JWS {
        return Err(JoseError::Invalid);
    }
    let mut parts = jws.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Invalid);
    };
    let decode = |part: &str| {
        BASE64URL_NOPAD
            .decode(part.as_bytes())
            .map_err(|_| JoseError::Invalid)
    };
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| JoseError::Invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(JoseError::Invalid);
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let key = keys
        .iter()
        .find(|k| Some(k.kid.as_str()) == kid)
        .ok_or(JoseError::Invalid)?;
    let components = RsaPublicKeyComponents {
        n: decode(&key.n)?,
        e: decode(&key.e)?,
    };
    let signed = &jws[..h.len() + 1 + c.len()];
    components
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &decode(s)?,
        )
        .map_err(|_| JoseError::Invalid)?;
    serde_json::from_slice(&decode(c)?).map_err(|_| JoseError::Invalid)
}

/// The RFC 7638 thumbprint of an RSA key: the required members in lexicographic order,
/// without white space, hashed with SHA-256.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_with_its_key_only() {
        let (key, der) = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let again = SigningKey::from_pkcs8(der.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.public(), again.public());
        assert_eq!(key.kid().len(), 43);
        let jws = key
            .sign("JWT", &serde_json::json!({"sub": "u1", "aud": "app"}))
            .unwrap_or_else(|e| panic!("{e}"));
        let claims = verify(&jws, &[key.public().clone()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims["sub"], "u1");

        let (other, _) = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify(&jws, &[other.public().clone()]),
            Err(JoseError::Invalid)
        );
        // A changed claim, a changed header (alg none) and garbage are refused.
        let parts: Vec<&str> = jws.split('.').collect();
        let forged_claims = BASE64URL_NOPAD.encode(br#"{"sub":"admin","aud":"app"}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&forged, &[key.public().clone()]),
            Err(JoseError::Invalid)
        );
        let none =
            BASE64URL_NOPAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid()).as_bytes());
        let unsigned = format!("{none}.{}.", parts[1]);
        assert_eq!(
            verify(&unsigned, &[key.public().clone()]),
            Err(JoseError::Invalid)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(
                verify(bad, &[key.public().clone()]),
                Err(JoseError::Invalid)
            );
        }
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 7638 §3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
