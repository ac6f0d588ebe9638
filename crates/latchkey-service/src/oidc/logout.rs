//! Logout (SPEC §9): RP-initiated logout — the application sends the browser to end its
//! Latchkey session and come back — and back-channel logout: when a session ends for any
//! reason, each application it signed into that has a `backchannel_logout_uri` is sent a
//! logout token (an HTTP POST), from a durable queue (the database trigger fills it in the transaction that
//! ended the session), at least once, with retries for about a day.

use std::future::Future;

use latchkey_core::{jose, model::EnvSlug, token::Token};
use serde_json::{Value, json};

use super::{clients::check_uri, issuer};
use crate::{AuditType, Caller, Outcome, Service, ServiceError, ServiceResult, store::Store};

/// The parameters of `…/oidc/logout` (RP-Initiated Logout 1.0 §2).
#[derive(Debug, Clone, Default)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
}

/// What a logout request asks, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The user and session a valid `id_token_hint` names: the application proved the request
    /// is its own, so no confirmation is asked.
    pub hinted: Option<(String, String)>,
    /// Where the browser goes afterwards: a registered post-logout URI, with `state`.
    pub then: Option<String>,
}

/// How logout tokens are sent (the HTTP client lives outside the use cases).
pub trait LogoutDelivery: Send + Sync {
    /// POST `logout_token` form-encoded to `uri`; `Err` with the reason unless it answered 2xx.
    fn post(
        &self,
        uri: &str,
        logout_token: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// How long a logout token is valid (Back-Channel Logout 1.0 §2.4 recommends minutes).
const LOGOUT_TOKEN_TTL: i64 = 120;
/// How long a sender holds a claimed delivery before another may try it.
const LEASE: i64 = 60;
/// Deliveries tried before giving up: with the backoff below, about a day.
const MAX_ATTEMPTS: i64 = 32;
/// The `events` member a logout token carries.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The wait after failed attempt `attempt` (0-based): 5 s doubling, at most an hour.
fn backoff(attempt: i64) -> i64 {
    5_i64
        .saturating_mul(1_i64 << attempt.clamp(0, 20))
        .min(3600)
}

impl<S: Store> Service<S> {
    /// Check a logout request: a hint we signed (an expired one too), a client it names, and
    /// a post-logout URI that client registered. `Err` with the reason for a page.
    pub async fn logout_plan(
        &self,
        env: &EnvSlug,
        p: &LogoutParams,
    ) -> ServiceResult<Result<LogoutPlan, String>> {
        self.environment(env).await?;
        let iss = issuer(&self.config.public_url, env.as_str());
        let claims = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
            Some(hint) => {
                let keys = self.published_keys(env).await?;
                jose::verify(hint, &keys)
                    .ok()
                    .filter(|c| c.get("iss").and_then(Value::as_str) == Some(iss.as_str()))
            }
            None => None,
        };
        let hinted_client = claims
            .as_ref()
            .and_then(|c| c.get("aud"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let client_id = match (&hinted_client, &p.client_id) {
            (Some(a), Some(b)) if a != b => {
                return Ok(Err("client_id is not the id_token_hint's audience".into()));
            }
            (Some(a), _) => Some(a.clone()),
            (None, b) => b.clone(),
        };
        let client = match &client_id {
            Some(id) if id.len() <= 64 => self.store.get_client(env, id).await?,
            _ => None,
        };
        let then = match (&p.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(uri), Some(c)) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                let mut url = url::Url::parse(uri).map_err(|_| {
                    ServiceError::Internal("a registered URI does not parse".into())
                })?;
                if let Some(state) = p.state.as_deref().filter(|s| s.len() <= 512) {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url.to_string())
            }
            (Some(_), _) => {
                return Ok(Err(
                    "post_logout_redirect_uri is not one the application registered".into(),
                ));
            }
        };
        let hinted = claims.and_then(|c| {
            let sub = c.get("sub")?.as_str()?.to_owned();
            let sid = c.get("sid")?.as_str()?.to_owned();
            Some((sub, sid))
        });
        Ok(Ok(LogoutPlan { hinted, then }))
    }

    /// End the session a valid `id_token_hint` named (RP-initiated logout).
    pub async fn end_hinted_session(
        &self,
        env: &EnvSlug,
        user_id: &str,
        session_id: &str,
        caller: &Caller,
    ) -> ServiceResult<()> {
        let record = self.audit(
            env,
            caller,
            AuditType::SessionEnded,
            Some(user_id),
            Outcome::Success,
            Some(json!({"session": session_id, "reason": "rp_logout"}).to_string()),
        );
        self.store
            .end_session(user_id, session_id, Some(&record))
            .await?;
        Ok(())
    }

    /// Deliver the back-channel logouts that are due; how many were tried. Every node runs
    /// this: a claimed delivery is skipped by the others for [`LEASE`] seconds.
    pub async fn deliver_logouts(&self, delivery: &impl LogoutDelivery) -> ServiceResult<usize> {
        let now = self.now();
        if !self.store.logout_due(now).await? {
            return Ok(0);
        }
        let jobs = self.store.claim_logouts(now, LEASE, 50).await?;
        for job in &jobs {
            let iss = issuer(&self.config.public_url, job.env.as_str());
            let claims = json!({
                "iss": iss,
                "aud": job.client_id,
                "iat": now,
                "exp": now + LOGOUT_TOKEN_TTL,
                "jti": Token::generate()?.expose(),
                "sub": job.user_id,
                "sid": job.session_id,
                "events": { BACKCHANNEL_EVENT: {} },
            });
            let token = self
                .signer(&job.env)
                .await?
                .sign("logout+jwt", &claims)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            // The URI was checked when registered; check again what leaves the server.
            let result = match check_uri(&job.uri, "back-channel logout URI") {
                Ok(()) => delivery.post(&job.uri, &token).await,
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => self.store.finish_logout(job.id, None).await?,
                Err(reason) => {
                    tracing::warn!(
                        env = %job.env, client = %job.client_id, attempt = job.attempts + 1,
                        %reason, "back-channel logout not delivered"
                    );
                    let give_up = job.attempts + 1 >= MAX_ATTEMPTS;
                    if job.attempts == 0 || give_up {
                        let record = self.audit(
                            &job.env,
                            &Caller::system(),
                            AuditType::OidcBackchannelFailed,
                            Some(&job.client_id),
                            Outcome::Failure,
                            Some(
                                json!({
                                    "user": job.user_id, "session": job.session_id,
                                    "attempts": job.attempts + 1, "given_up": give_up,
                                    "reason": reason,
                                })
                                .to_string(),
                            ),
                        );
                        if give_up {
                            self.store.finish_logout(job.id, Some(&record)).await?;
                            continue;
                        }
                        self.store.append_audit(&record).await?;
                    }
                    self.store
                        .retry_logout(job.id, now + backoff(job.attempts))
                        .await?;
                }
            }
        }
        Ok(jobs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour_and_end_after_about_a_day() {
        assert_eq!(backoff(0), 5);
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(10), 3600);
        let total: i64 = (0..MAX_ATTEMPTS - 1).map(backoff).sum();
        assert!((20 * 3600..=30 * 3600).contains(&total), "{total}");
    }
}
