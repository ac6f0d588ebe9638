//! OpenID Connect's times (SPEC §9), to the second: a code lives 60 s, an access token its
//! client's lifetime, every token no longer than its session; a rotated signing key is
//! published before it signs and kept until what it signed has expired; a back-channel
//! delivery is retried on its schedule and given up after about a day.

use std::sync::{Arc, Mutex};

use latchkey_core::{HumanDuration, jose};
use latchkey_service::{
    environments::EnvironmentPatch,
    oidc::{
        authorize::{Authorization, AuthorizeParams},
        clients::ClientSpec,
        logout::LogoutDelivery,
        tokens::{ClientCredentials, IssuedTokens, TokenRequest},
    },
    store::{AuditQuery, AuditStore},
};
use serde_json::Value;

use crate::fixture::{Fixture, caller};

const REDIRECT: &str = "https://app.example.com/cb";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A confidential client `app` (with `backchannel`, if given); its credentials.
async fn app(f: &Fixture, backchannel: Option<&str>) -> ClientCredentials {
    let admin = f.service.cli_admin(&f.env).await.unwrap();
    let issued = f
        .service
        .create_client(
            &admin,
            ClientSpec {
                client_id: Some("app".into()),
                name: "App".into(),
                redirect_uris: vec![REDIRECT.into()],
                backchannel_logout_uri: backchannel.map(str::to_owned),
                ..ClientSpec::default()
            },
        )
        .await
        .unwrap();
    ClientCredentials {
        basic: None,
        client_id: Some("app".into()),
        client_secret: issued.secret.map(|s| s.expose().to_owned()),
    }
}

/// A code for the browser with `session`.
async fn code(f: &Fixture, session: &str) -> String {
    let principal = f.service.authenticate(session).await.unwrap();
    let params = AuthorizeParams {
        client_id: Some("app".into()),
        redirect_uri: Some(REDIRECT.into()),
        response_type: Some("code".into()),
        scope: Some("openid email".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..AuthorizeParams::default()
    };
    let Authorization::Return(url) = f
        .service
        .authorize(&f.env, params, Some(&principal), &caller())
        .await
        .unwrap()
    else {
        panic!("no code for a signed-in browser");
    };
    url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

async fn exchange(
    f: &Fixture,
    creds: &ClientCredentials,
    code: &str,
) -> Result<IssuedTokens, latchkey_service::oidc::OAuthError> {
    let request = TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(VERIFIER.into()),
        ..TokenRequest::default()
    };
    f.service.token(&f.env, creds, request, &caller()).await
}

async fn refresh(
    f: &Fixture,
    creds: &ClientCredentials,
    token: &str,
) -> Result<IssuedTokens, latchkey_service::oidc::OAuthError> {
    let request = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(token.into()),
        ..TokenRequest::default()
    };
    f.service.token(&f.env, creds, request, &caller()).await
}

/// The `kid` in a JWS's header.
fn kid(jws: &str) -> String {
    let header = jws.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &data_encoding::BASE64URL_NOPAD
            .decode(header.as_bytes())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn published(f: &Fixture) -> Vec<String> {
    f.service
        .published_keys(&f.env)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect()
}

pub(crate) async fn codes_and_tokens_live_their_time_and_no_longer_than_the_session(f: Fixture) {
    f.patch(EnvironmentPatch {
        session_max_age: Some(HumanDuration::from_secs(3_600).unwrap()),
        ..EnvironmentPatch::default()
    })
    .await;
    let creds = app(&f, None).await;
    let alice = f.enrol("alice@example.com").await;
    let signed_in = f.clock_now();

    // A code is good for 60 s and no longer.
    let late = code(&f, &alice.session).await;
    f.clock.advance(60);
    assert_eq!(
        exchange(&f, &creds, &late).await.unwrap_err().error,
        "invalid_grant"
    );
    let c = code(&f, &alice.session).await;
    f.clock.advance(59);
    let tokens = exchange(&f, &creds, &c).await.unwrap();
    assert_eq!(tokens.expires_in, 600);
    let access = tokens.access_token.expose().to_owned();

    // The access token: its client's ten minutes, to the second.
    let issued = f.clock_now();
    f.clock.set(issued + 599);
    assert!(f.service.userinfo(&f.env, &access).await.is_ok());
    f.clock.set(issued + 600);
    assert_eq!(
        f.service
            .userinfo(&f.env, &access)
            .await
            .unwrap_err()
            .status,
        401
    );

    // Refreshed, tokens live on — but never past the session's max age.
    let mut rt = tokens.refresh_token.unwrap().expose().to_owned();
    while f.clock_now() + 900 < signed_in + 3_600 {
        f.clock.advance(900);
        let t = refresh(&f, &creds, &rt).await.unwrap();
        assert!(t.expires_in <= signed_in + 3_600 - f.clock_now());
        t.refresh_token.unwrap().expose().clone_into(&mut rt);
    }
    f.clock.set(signed_in + 3_599);
    let last = refresh(&f, &creds, &rt).await.unwrap();
    assert_eq!(last.expires_in, 1, "an access token ends with its session");
    f.clock.set(signed_in + 3_600);
    let rt = last.refresh_token.unwrap().expose().to_owned();
    assert_eq!(
        refresh(&f, &creds, &rt).await.unwrap_err().error,
        "invalid_grant"
    );
    assert!(!f.valid(&alice.session).await, "and the session is over");
}

pub(crate) async fn a_rotated_key_is_published_before_it_signs_and_kept_after(f: Fixture) {
    let creds = app(&f, None).await;
    let alice = f.enrol("alice@example.com").await;
    let first = published(&f).await;
    assert_eq!(first.len(), 1, "one key, made at the first use");
    let t0 = f.clock_now();
    let new = f
        .service
        .rotate_signing_key(&f.env, 3_600, &latchkey_service::Caller::cli())
        .await
        .unwrap();
    assert_eq!(
        published(&f).await,
        [first[0].clone(), new.clone()],
        "published at once"
    );

    // Every ID token, at every moment around the rotation, is signed by a published key:
    // the old one until the delay has passed, the new one after.
    for at in [0, 1_800, 3_599, 3_600, 3_700, 4_000, 4_100, 7_200] {
        f.clock.set(t0 + at);
        let tokens = exchange(&f, &creds, &code(&f, &alice.session).await)
            .await
            .unwrap();
        let signer = kid(&tokens.id_token);
        let keys = f.service.published_keys(&f.env).await.unwrap();
        assert!(
            keys.iter().any(|k| k.kid == signer),
            "+{at}: signed by an unpublished key"
        );
        let expected = if at < 3_600 { &first[0] } else { &new };
        assert_eq!(&signer, expected, "+{at}");
        jose::verify(&tokens.id_token, &keys).unwrap();
    }
    // The old key is gone once the last token it may have signed has expired (an ID token's
    // five minutes, and two more for clocks and caches).
    f.clock.set(t0 + 3_600 + 419);
    assert_eq!(published(&f).await.len(), 2);
    f.clock.set(t0 + 3_600 + 420);
    assert_eq!(published(&f).await, [new]);
}

/// A receiver that fails until told otherwise, and counts what it was sent.
#[derive(Clone, Default)]
struct FlakyReceiver {
    up: Arc<Mutex<bool>>,
    tries: Arc<Mutex<Vec<String>>>,
}

impl LogoutDelivery for FlakyReceiver {
    async fn post(&self, uri: &str, _: &str) -> Result<(), String> {
        self.tries.lock().unwrap().push(uri.to_owned());
        if *self.up.lock().unwrap() {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }
}

/// `email` enrolled, signed into the client and signed out: a back-channel logout is queued.
async fn signed_in_then_out(f: &Fixture, creds: &ClientCredentials, email: &str) {
    let p = f.enrol(email).await;
    exchange(f, creds, &code(f, &p.session).await)
        .await
        .unwrap();
    let principal = f.service.authenticate(&p.session).await.unwrap();
    f.service
        .logout(&principal, &principal.caller(caller().origin))
        .await
        .unwrap();
}

/// The environment's `oidc.backchannel.failed` events.
async fn backchannel_failures(f: &Fixture) -> Vec<latchkey_service::AuditRecord> {
    f.service
        .store()
        .list_audit(
            &f.env,
            &AuditQuery {
                kind: Some("oidc.backchannel.failed".into()),
                limit: 500,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap()
}

pub(crate) async fn deliveries_retry_on_their_schedule_and_give_up_after_a_day(f: Fixture) {
    let creds = app(&f, Some("https://app.example.com/logout")).await;
    let receiver = FlakyReceiver::default();
    for email in ["a@example.com", "b@example.com"] {
        signed_in_then_out(&f, &creds, email).await;
    }
    // Both due at once; each failure waits 5 s, then 10, 20… up to an hour.
    assert_eq!(f.service.deliver_logouts(&receiver).await.unwrap(), 2);
    assert_eq!(
        f.service.deliver_logouts(&receiver).await.unwrap(),
        0,
        "not before 5 s"
    );
    f.clock.advance(5);
    assert_eq!(f.service.deliver_logouts(&receiver).await.unwrap(), 2);
    f.clock.advance(9);
    assert_eq!(
        f.service.deliver_logouts(&receiver).await.unwrap(),
        0,
        "then 10 s"
    );
    f.clock.advance(1);
    // Both get through when the receiver is back.
    *receiver.up.lock().unwrap() = true;
    assert_eq!(f.service.deliver_logouts(&receiver).await.unwrap(), 2);
    *receiver.up.lock().unwrap() = false;
    assert_eq!(receiver.tries.lock().unwrap().len(), 6);

    // Nothing is left to send.
    f.clock.advance(86_400 * 2);
    assert_eq!(f.service.deliver_logouts(&receiver).await.unwrap(), 0);
    let events = backchannel_failures(&f).await;
    let failed = events
        .iter()
        .filter(|e| e.kind == "oidc.backchannel.failed")
        .count();
    assert_eq!(failed, 2, "one event at each delivery's first failure");

    // A receiver that never comes back: retried for about a day, then given up, said once more.
    signed_in_then_out(&f, &creds, "c@example.com").await;
    let started = f.clock_now();
    let mut attempts = 0;
    while f.clock_now() < started + 3 * 86_400 {
        attempts += f.service.deliver_logouts(&receiver).await.unwrap();
        f.clock.advance(60);
    }
    assert_eq!(attempts, 32, "32 attempts, then given up");
    let events = backchannel_failures(&f).await;
    let given_up: Vec<_> = events
        .iter()
        .filter(|e| {
            e.kind == "oidc.backchannel.failed"
                && e.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("\"given_up\":true"))
        })
        .collect();
    assert_eq!(given_up.len(), 1);
}
