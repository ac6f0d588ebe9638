//! An environment's signing keys (SPEC §9): one RSA 2048-bit key, made at the environment's
//! first OpenID Connect use and stored sealed with the master key so every node signs with
//! it. A rotation adds the next key, published in `jwks` at once and signing after a delay
//! (so relying parties' key caches refresh first); a key that stopped signing stays
//! published until every token it signed has expired.
//!
//! Each node keeps the parsed keys for [`CACHE_SECONDS`]: signing needs no read. `jwks` reads
//! the database at every request, so a rotation on one node is published by all at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use latchkey_core::{
    jose::{PublicJwk, SigningKey},
    model::EnvSlug,
};
use serde_json::{Value, json};

use super::ID_TOKEN_TTL;
use crate::{
    AuditType, Caller, Outcome, Service, ServiceError, ServiceResult,
    store::{SigningKeyRecord, Store, StoreError},
};

/// How long a node keeps an environment's parsed keys before reading them again.
const CACHE_SECONDS: i64 = 30;
/// How long a key that stopped signing stays published: the longest a token it signed lives
/// (an ID token), with a margin for clocks and caches.
const RETIRED_PUBLISHED: i64 = ID_TOKEN_TTL + 120;
/// The default delay between publishing a rotated key and signing with it (SPEC §9: 1 h).
pub const DEFAULT_ROTATION_DELAY: i64 = 3600;

/// An environment's parsed keys, oldest first.
type Keys = Arc<Vec<Loaded>>;

/// The parsed keys of each environment, and when they were read.
#[derive(Default)]
pub struct KeyCache {
    envs: Mutex<HashMap<String, (i64, Keys)>>,
}

/// A key as a node holds it.
struct Loaded {
    signs_from: i64,
    key: Arc<SigningKey>,
}

fn aad(env: &EnvSlug, kid: &str) -> Vec<u8> {
    format!("latchkey/oidc-key/v1/{env}/{kid}").into_bytes()
}

/// The keys published at `now`: those not yet signing, the one signing, and those that
/// stopped signing less than [`RETIRED_PUBLISHED`] ago. `keys` are oldest first.
fn published(keys: &[SigningKeyRecord], now: i64) -> Vec<&SigningKeyRecord> {
    keys.iter()
        .enumerate()
        .filter(|(i, _)| match keys.get(i + 1) {
            // Replaced: until its successor has signed for long enough.
            Some(next) => now < next.signs_from + RETIRED_PUBLISHED,
            None => true,
        })
        .map(|(_, k)| k)
        .collect()
}

impl<S: Store> Service<S> {
    /// The environment's keys (made if it has none yet), oldest first.
    async fn key_records(&self, env: &EnvSlug) -> ServiceResult<Vec<SigningKeyRecord>> {
        let keys = self.store.signing_keys(env).await?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        match self.add_key(env, 1, 0, None).await {
            Ok(_) | Err(ServiceError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(self.store.signing_keys(env).await?)
    }

    /// Make and store key `generation` of `env`, signing from `signs_from`; its kid.
    async fn add_key(
        &self,
        env: &EnvSlug,
        generation: i64,
        signs_from: i64,
        caller: Option<&Caller>,
    ) -> ServiceResult<String> {
        let (key, pkcs8) = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let kid = key.kid().to_owned();
        let sealed = self
            .keyring()
            .seal(pkcs8.expose(), &aad(env, &kid))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let record = SigningKeyRecord {
            kid: kid.clone(),
            env: env.clone(),
            generation,
            private_sealed: sealed,
            public_jwk: key.public().to_json().to_string(),
            created_at: self.now(),
            signs_from,
        };
        let audit = caller.map(|c| {
            self.audit(
                env,
                c,
                AuditType::OidcSigningKeyCreated,
                Some(&kid),
                Outcome::Success,
                Some(json!({"generation": generation, "signs_from": signs_from}).to_string()),
            )
        });
        self.store
            .add_signing_key(&record, audit.as_ref())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict("another key of that generation exists".into())
                }
                other => other.into(),
            })?;
        self.forget_keys(env);
        Ok(kid)
    }

    fn forget_keys(&self, env: &EnvSlug) {
        self.oidc_keys
            .envs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(env.as_str());
    }

    /// The environment's keys, parsed, from this node's cache while it is fresh.
    async fn loaded_keys(&self, env: &EnvSlug) -> ServiceResult<Keys> {
        let now = self.now();
        if let Some((at, keys)) = self
            .oidc_keys
            .envs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(env.as_str())
            && now - at < CACHE_SECONDS
        {
            return Ok(Arc::clone(keys));
        }
        let mut loaded = Vec::new();
        for record in self.key_records(env).await? {
            let der = self
                .keyring()
                .open(&record.private_sealed, &aad(env, &record.kid))
                .map_err(|e| ServiceError::Internal(format!("signing key {}: {e}", record.kid)))?;
            let key = SigningKey::from_pkcs8(der.expose())
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            loaded.push(Loaded {
                signs_from: record.signs_from,
                key: Arc::new(key),
            });
        }
        let loaded = Arc::new(loaded);
        self.oidc_keys
            .envs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(env.as_str().to_owned(), (now, Arc::clone(&loaded)));
        Ok(loaded)
    }

    /// The key that signs now: the newest whose time has come.
    pub(crate) async fn signer(&self, env: &EnvSlug) -> ServiceResult<Arc<SigningKey>> {
        let now = self.now();
        let keys = self.loaded_keys(env).await?;
        keys.iter()
            .rev()
            .find(|k| k.signs_from <= now)
            .or_else(|| keys.first())
            .map(|k| Arc::clone(&k.key))
            .ok_or_else(|| ServiceError::Internal("no signing key".into()))
    }

    /// The public keys `jwks` publishes now.
    pub async fn published_keys(&self, env: &EnvSlug) -> ServiceResult<Vec<PublicJwk>> {
        let keys = self.key_records(env).await?;
        Ok(published(&keys, self.now())
            .into_iter()
            .filter_map(|k| {
                serde_json::from_str::<Value>(&k.public_jwk)
                    .ok()
                    .as_ref()
                    .and_then(PublicJwk::from_json)
            })
            .collect())
    }

    /// `GET {issuer}/oidc/jwks`: the JWK set.
    pub async fn jwks(&self, env: &EnvSlug) -> ServiceResult<Value> {
        self.environment(env).await?;
        let keys: Vec<Value> = self
            .published_keys(env)
            .await?
            .iter()
            .map(PublicJwk::to_json)
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// `latchkey env rotate-signing-key`: a new key, published now, signing after `delay`
    /// seconds. Its kid.
    pub async fn rotate_signing_key(
        &self,
        env: &EnvSlug,
        delay: i64,
        caller: &Caller,
    ) -> ServiceResult<String> {
        self.environment(env).await?;
        if !(0..=30 * 86_400).contains(&delay) {
            return Err(ServiceError::Invalid(
                "the delay must be between 0 and 30 days".into(),
            ));
        }
        let keys = self.key_records(env).await?;
        let generation = keys.last().map_or(1, |k| k.generation + 1);
        self.add_key(env, generation, self.now() + delay, Some(caller))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: i64, signs_from: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: format!("k{generation}"),
            env: EnvSlug::parse("prod").unwrap_or_else(|e| panic!("{e}")),
            generation,
            private_sealed: Vec::new(),
            public_jwk: String::new(),
            created_at: 0,
            signs_from,
        }
    }

    #[test]
    fn a_replaced_key_stays_published_until_its_tokens_expire() {
        let keys = [key(1, 0), key(2, 1000)];
        let kids = |now| -> Vec<String> {
            published(&keys, now)
                .iter()
                .map(|k| k.kid.clone())
                .collect()
        };
        // The new key is published before it signs; the old one until its last token expired.
        assert_eq!(kids(10), ["k1", "k2"]);
        assert_eq!(kids(1000 + RETIRED_PUBLISHED - 1), ["k1", "k2"]);
        assert_eq!(kids(1000 + RETIRED_PUBLISHED), ["k2"]);
    }
}
