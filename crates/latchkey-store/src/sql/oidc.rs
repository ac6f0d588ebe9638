//! OpenID Connect (SPEC §9): clients, signing keys, waiting authorization requests, codes,
//! tokens and the back-channel logout queue. Codes, tokens and grants reference their session
//! and go with it; the trigger of migration 0003 queues the logouts.

use latchkey_core::{model::EnvSlug, token::TokenHash};
use latchkey_service::{
    AuditRecord,
    store::{
        AuthRequest, ClientRecord, ClientType, CodeRecord, LogoutJob, SessionView,
        SigningKeyRecord, StoreResult, TokenKind, TokenRecord, TokenView,
    },
};

use super::{Db, Row, Sql, Value, audit, get, rows, rows::env_slug};
use crate::corrupt;

/// URI lists are stored one per line.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn client(row: &dyn Row) -> StoreResult<ClientRecord> {
    let kind: String = get(row, "client_type")?;
    let redirects: String = get(row, "redirect_uris")?;
    let logouts: String = get(row, "post_logout_redirect_uris")?;
    let secret: Option<String> = get(row, "secret_hash")?;
    Ok(ClientRecord {
        env: env_slug(get(row, "env")?)?,
        client_id: get(row, "client_id")?,
        name: get(row, "name")?,
        client_type: ClientType::parse(&kind).ok_or_else(|| corrupt("client_type", &kind))?,
        secret_hash: secret.map(TokenHash::from_stored),
        require_pkce: get(row, "require_pkce")?,
        redirect_uris: lines(&redirects),
        post_logout_redirect_uris: lines(&logouts),
        backchannel_logout_uri: get(row, "backchannel_logout_uri")?,
        require_mfa: get(row, "require_mfa")?,
        access_token_ttl: get(row, "access_token_ttl")?,
        refresh_token: get(row, "refresh_token")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

macro_rules! select_clients {
    ($tail:literal) => {
        concat!(
            "SELECT env, client_id, name, client_type, secret_hash, require_pkce, redirect_uris, \
             post_logout_redirect_uris, backchannel_logout_uri, require_mfa, access_token_ttl, \
             refresh_token, created_at, updated_at FROM oidc_clients ",
            $tail
        )
    };
}

static INSERT_CLIENT: Sql = Sql::new(
    "INSERT INTO oidc_clients (env, client_id, name, client_type, secret_hash, require_pkce, \
     redirect_uris, post_logout_redirect_uris, backchannel_logout_uri, require_mfa, \
     access_token_ttl, refresh_token, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
);

static UPDATE_CLIENT: Sql = Sql::new(
    "UPDATE oidc_clients SET name = ?3, client_type = ?4, secret_hash = ?5, require_pkce = ?6, \
     redirect_uris = ?7, post_logout_redirect_uris = ?8, backchannel_logout_uri = ?9, \
     require_mfa = ?10, access_token_ttl = ?11, refresh_token = ?12, updated_at = ?13 \
     WHERE env = ?1 AND client_id = ?2",
);

/// A client's columns, in the order of [`INSERT_CLIENT`] (and of [`UPDATE_CLIENT`], which
/// leaves `created_at` out).
fn client_values<'a>(c: &'a ClientRecord, redirects: &'a str, logouts: &'a str) -> [Value<'a>; 14] {
    [
        c.env.as_str().into(),
        c.client_id.as_str().into(),
        c.name.as_str().into(),
        c.client_type.as_str().into(),
        c.secret_hash.as_ref().map(TokenHash::as_str).into(),
        c.require_pkce.into(),
        redirects.into(),
        logouts.into(),
        c.backchannel_logout_uri.as_deref().into(),
        c.require_mfa.into(),
        c.access_token_ttl.into(),
        c.refresh_token.into(),
        c.created_at.into(),
        c.updated_at.into(),
    ]
}

pub(crate) async fn create_client<D: Db>(
    db: &mut D,
    c: &ClientRecord,
    record: &AuditRecord,
) -> StoreResult<()> {
    let (redirects, logouts) = (
        c.redirect_uris.join("\n"),
        c.post_logout_redirect_uris.join("\n"),
    );
    db.run(&INSERT_CLIENT, &client_values(c, &redirects, &logouts))
        .await?;
    audit::insert(db, record).await
}

pub(crate) async fn update_client<D: Db>(
    db: &mut D,
    c: &ClientRecord,
    record: &AuditRecord,
) -> StoreResult<bool> {
    let (redirects, logouts) = (
        c.redirect_uris.join("\n"),
        c.post_logout_redirect_uris.join("\n"),
    );
    let mut values = client_values(c, &redirects, &logouts).to_vec();
    values.remove(12);
    if db.exec(&UPDATE_CLIENT, &values).await? == 0 {
        return Ok(false);
    }
    audit::insert(db, record).await?;
    Ok(true)
}

static LIST_CLIENTS: Sql = Sql::new(select_clients!("WHERE env = ?1 ORDER BY client_id"));

pub(crate) async fn list_clients<D: Db>(
    db: &mut D,
    env: &EnvSlug,
) -> StoreResult<Vec<ClientRecord>> {
    db.all(&LIST_CLIENTS, &[env.as_str().into()], client).await
}

static GET_CLIENT: Sql = Sql::new(select_clients!("WHERE env = ?1 AND client_id = ?2"));

pub(crate) async fn get_client<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    client_id: &str,
) -> StoreResult<Option<ClientRecord>> {
    db.one(
        &GET_CLIENT,
        &[env.as_str().into(), client_id.into()],
        client,
    )
    .await
}

static DELETE_CLIENT: Sql = Sql::new("DELETE FROM oidc_clients WHERE env = ?1 AND client_id = ?2");

pub(crate) async fn delete_client<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    client_id: &str,
    record: &AuditRecord,
) -> StoreResult<bool> {
    if db
        .exec(&DELETE_CLIENT, &[env.as_str().into(), client_id.into()])
        .await?
        == 0
    {
        return Ok(false);
    }
    audit::insert(db, record).await?;
    Ok(true)
}

static KEYS: Sql = Sql::new(
    "SELECT kid, env, generation, private_sealed, public_jwk, created_at, signs_from \
     FROM oidc_signing_keys WHERE env = ?1 ORDER BY generation",
);

pub(crate) async fn signing_keys<D: Db>(
    db: &mut D,
    env: &EnvSlug,
) -> StoreResult<Vec<SigningKeyRecord>> {
    db.all(&KEYS, &[env.as_str().into()], |row| {
        Ok(SigningKeyRecord {
            kid: get(row, "kid")?,
            env: env_slug(get(row, "env")?)?,
            generation: get(row, "generation")?,
            private_sealed: get(row, "private_sealed")?,
            public_jwk: get(row, "public_jwk")?,
            created_at: get(row, "created_at")?,
            signs_from: get(row, "signs_from")?,
        })
    })
    .await
}

static INSERT_KEY: Sql = Sql::new(
    "INSERT INTO oidc_signing_keys (kid, env, generation, private_sealed, public_jwk, \
     created_at, signs_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
);

pub(crate) async fn add_signing_key<D: Db>(
    db: &mut D,
    k: &SigningKeyRecord,
    record: Option<&AuditRecord>,
) -> StoreResult<()> {
    db.run(
        &INSERT_KEY,
        &[
            k.kid.as_str().into(),
            k.env.as_str().into(),
            k.generation.into(),
            k.private_sealed.as_slice().into(),
            k.public_jwk.as_str().into(),
            k.created_at.into(),
            k.signs_from.into(),
        ],
    )
    .await?;
    if let Some(record) = record {
        audit::insert(db, record).await?;
    }
    Ok(())
}

static INSERT_REQUEST: Sql = Sql::new(
    "INSERT INTO oidc_requests (handle_hash, env, client_id, redirect_uri, scope, state, nonce, \
     code_challenge, max_age, fresh_login, needs_mfa, login_hint, created_at, expires_at, \
     prior_session) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
);

pub(crate) async fn save_request<D: Db>(db: &mut D, r: &AuthRequest) -> StoreResult<()> {
    db.run(
        &INSERT_REQUEST,
        &[
            r.handle_hash.as_str().into(),
            r.env.as_str().into(),
            r.client_id.as_str().into(),
            r.redirect_uri.as_str().into(),
            r.scope.as_str().into(),
            r.state.as_deref().into(),
            r.nonce.as_deref().into(),
            r.code_challenge.as_deref().into(),
            r.max_age.into(),
            r.fresh_login.into(),
            r.needs_mfa.into(),
            r.login_hint.as_deref().into(),
            r.created_at.into(),
            r.expires_at.into(),
            r.prior_session.as_deref().into(),
        ],
    )
    .await
}

static REQUEST: Sql = Sql::new(
    "SELECT handle_hash, env, client_id, redirect_uri, scope, state, nonce, code_challenge, \
     max_age, fresh_login, needs_mfa, login_hint, prior_session, created_at, expires_at \
     FROM oidc_requests WHERE handle_hash = ?1 AND expires_at > ?2",
);

pub(crate) async fn request<D: Db>(
    db: &mut D,
    handle_hash: &TokenHash,
    now: i64,
) -> StoreResult<Option<AuthRequest>> {
    db.one(
        &REQUEST,
        &[handle_hash.as_str().into(), now.into()],
        |row| {
            Ok(AuthRequest {
                handle_hash: TokenHash::from_stored(get(row, "handle_hash")?),
                env: env_slug(get(row, "env")?)?,
                client_id: get(row, "client_id")?,
                redirect_uri: get(row, "redirect_uri")?,
                scope: get(row, "scope")?,
                state: get(row, "state")?,
                nonce: get(row, "nonce")?,
                code_challenge: get(row, "code_challenge")?,
                max_age: get(row, "max_age")?,
                fresh_login: get(row, "fresh_login")?,
                needs_mfa: get(row, "needs_mfa")?,
                login_hint: get(row, "login_hint")?,
                prior_session: get(row, "prior_session")?,
                created_at: get(row, "created_at")?,
                expires_at: get(row, "expires_at")?,
            })
        },
    )
    .await
}

static FINISH_REQUEST: Sql =
    Sql::new("DELETE FROM oidc_requests WHERE handle_hash = ?1 AND expires_at > ?2");

static INSERT_CODE: Sql = Sql::new(
    "INSERT INTO oidc_codes (code_hash, env, client_id, session_id, user_id, redirect_uri, \
     scope, nonce, code_challenge, family_id, created_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
);

pub(crate) async fn issue_code<D: Db>(
    db: &mut D,
    handle_hash: Option<&TokenHash>,
    c: &CodeRecord,
    now: i64,
    record: &AuditRecord,
) -> StoreResult<bool> {
    if let Some(handle_hash) = handle_hash
        && db
            .exec(&FINISH_REQUEST, &[handle_hash.as_str().into(), now.into()])
            .await?
            == 0
    {
        return Ok(false);
    }
    db.run(
        &INSERT_CODE,
        &[
            c.code_hash.as_str().into(),
            c.env.as_str().into(),
            c.client_id.as_str().into(),
            c.session_id.as_str().into(),
            c.user_id.as_str().into(),
            c.redirect_uri.as_str().into(),
            c.scope.as_str().into(),
            c.nonce.as_deref().into(),
            c.code_challenge.as_deref().into(),
            c.family_id.as_str().into(),
            c.created_at.into(),
            c.expires_at.into(),
        ],
    )
    .await?;
    audit::insert(db, record).await?;
    Ok(true)
}

static CODE: Sql = Sql::new(
    "SELECT code_hash, env, client_id, session_id, user_id, redirect_uri, scope, nonce, \
     code_challenge, family_id, created_at, expires_at, used_at FROM oidc_codes \
     WHERE code_hash = ?1",
);

pub(crate) async fn code<D: Db>(
    db: &mut D,
    code_hash: &TokenHash,
) -> StoreResult<Option<CodeRecord>> {
    db.one(&CODE, &[code_hash.as_str().into()], |row| {
        Ok(CodeRecord {
            code_hash: TokenHash::from_stored(get(row, "code_hash")?),
            env: env_slug(get(row, "env")?)?,
            client_id: get(row, "client_id")?,
            session_id: get(row, "session_id")?,
            user_id: get(row, "user_id")?,
            redirect_uri: get(row, "redirect_uri")?,
            scope: get(row, "scope")?,
            nonce: get(row, "nonce")?,
            code_challenge: get(row, "code_challenge")?,
            family_id: get(row, "family_id")?,
            created_at: get(row, "created_at")?,
            expires_at: get(row, "expires_at")?,
            used_at: get(row, "used_at")?,
        })
    })
    .await
}

static USE_CODE: Sql = Sql::new(
    "UPDATE oidc_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL \
     AND expires_at > ?2",
);

static INSERT_GRANT: Sql = Sql::dialects(
    "INSERT OR IGNORE INTO oidc_grants (session_id, env, client_id, user_id, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)",
    "INSERT INTO oidc_grants (session_id, env, client_id, user_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
);

static INSERT_TOKEN: Sql = Sql::new(
    "INSERT INTO oidc_tokens (token_hash, kind, family_id, env, client_id, session_id, user_id, \
     scope, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
);

/// Store issued tokens, and record that their session signed into their client.
async fn insert_tokens<D: Db>(db: &mut D, tokens: &[TokenRecord]) -> StoreResult<()> {
    for t in tokens {
        db.run(
            &INSERT_TOKEN,
            &[
                t.token_hash.as_str().into(),
                t.kind.as_str().into(),
                t.family_id.as_str().into(),
                t.env.as_str().into(),
                t.client_id.as_str().into(),
                t.session_id.as_str().into(),
                t.user_id.as_str().into(),
                t.scope.as_str().into(),
                t.created_at.into(),
                t.expires_at.into(),
            ],
        )
        .await?;
    }
    if let Some(t) = tokens.first() {
        db.run(
            &INSERT_GRANT,
            &[
                t.session_id.as_str().into(),
                t.env.as_str().into(),
                t.client_id.as_str().into(),
                t.user_id.as_str().into(),
                t.created_at.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn exchange_code<D: Db>(
    db: &mut D,
    code_hash: &TokenHash,
    now: i64,
    tokens: &[TokenRecord],
) -> StoreResult<bool> {
    if db
        .exec(&USE_CODE, &[code_hash.as_str().into(), now.into()])
        .await?
        == 0
    {
        return Ok(false);
    }
    insert_tokens(db, tokens).await?;
    Ok(true)
}

static TOKEN: Sql = Sql::new(concat!(
    "SELECT t.token_hash AS t_hash, t.kind AS t_kind, t.family_id AS t_family, t.env AS t_env, \
     t.client_id AS t_client, t.session_id AS t_session, t.user_id AS t_user, \
     t.scope AS t_scope, t.created_at AS t_created, t.expires_at AS t_expires, \
     t.used_at AS t_used, ",
    session_columns!(),
    ", ",
    user_columns!(),
    ", ",
    env_columns!(),
    " FROM oidc_tokens t JOIN sessions s ON s.id = t.session_id \
     JOIN users u ON u.id = s.user_id JOIN environments e ON e.slug = s.env \
     WHERE t.token_hash = ?1"
));

pub(crate) async fn token<D: Db>(
    db: &mut D,
    token_hash: &TokenHash,
) -> StoreResult<Option<TokenView>> {
    db.one(&TOKEN, &[token_hash.as_str().into()], |row| {
        let kind: String = get(row, "t_kind")?;
        Ok(TokenView {
            token: TokenRecord {
                token_hash: TokenHash::from_stored(get(row, "t_hash")?),
                kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
                family_id: get(row, "t_family")?,
                env: env_slug(get(row, "t_env")?)?,
                client_id: get(row, "t_client")?,
                session_id: get(row, "t_session")?,
                user_id: get(row, "t_user")?,
                scope: get(row, "t_scope")?,
                created_at: get(row, "t_created")?,
                expires_at: get(row, "t_expires")?,
                used_at: get(row, "t_used")?,
            },
            session: SessionView {
                session: rows::session_record(row)?,
                user: rows::user(row)?,
                environment: rows::environment(row)?,
            },
        })
    })
    .await
}

static USE_REFRESH: Sql = Sql::new(
    "UPDATE oidc_tokens SET used_at = ?2 WHERE token_hash = ?1 AND kind = 'refresh' \
     AND used_at IS NULL",
);

pub(crate) async fn rotate_refresh<D: Db>(
    db: &mut D,
    old_hash: &TokenHash,
    now: i64,
    tokens: &[TokenRecord],
) -> StoreResult<bool> {
    if db
        .exec(&USE_REFRESH, &[old_hash.as_str().into(), now.into()])
        .await?
        == 0
    {
        return Ok(false);
    }
    insert_tokens(db, tokens).await?;
    Ok(true)
}

static REVOKE_FAMILY: Sql = Sql::new("DELETE FROM oidc_tokens WHERE family_id = ?1");

pub(crate) async fn revoke_family<D: Db>(
    db: &mut D,
    family_id: &str,
    record: Option<&AuditRecord>,
) -> StoreResult<u64> {
    let n = db.exec(&REVOKE_FAMILY, &[family_id.into()]).await?;
    if let Some(record) = record {
        audit::insert(db, record).await?;
    }
    Ok(n)
}

static REVOKE_TOKEN: Sql = Sql::new("DELETE FROM oidc_tokens WHERE token_hash = ?1");

pub(crate) async fn revoke_token<D: Db>(db: &mut D, token_hash: &TokenHash) -> StoreResult<()> {
    db.run(&REVOKE_TOKEN, &[token_hash.as_str().into()]).await
}

static LOGOUT_DUE: Sql =
    Sql::new("SELECT 1 AS due FROM oidc_logout_queue WHERE next_attempt_at <= ?1 LIMIT 1");

pub(crate) async fn logout_due<D: Db>(db: &mut D, now: i64) -> StoreResult<bool> {
    super::exists(db, &LOGOUT_DUE, &[now.into()]).await
}

static CLAIM_LOGOUTS: Sql = Sql::dialects(
    "UPDATE oidc_logout_queue SET next_attempt_at = ?2 + ?3 WHERE id IN \
     (SELECT id FROM oidc_logout_queue WHERE next_attempt_at <= ?2 ORDER BY id LIMIT ?1) \
     RETURNING id, env, client_id, user_id, session_id, uri, attempts",
    "UPDATE oidc_logout_queue SET next_attempt_at = $2 + $3 WHERE id IN \
     (SELECT id FROM oidc_logout_queue WHERE next_attempt_at <= $2 ORDER BY id LIMIT $1 \
     FOR UPDATE SKIP LOCKED) \
     RETURNING id, env, client_id, user_id, session_id, uri, attempts",
);

pub(crate) async fn claim_logouts<D: Db>(
    db: &mut D,
    now: i64,
    lease: i64,
    limit: i64,
) -> StoreResult<Vec<LogoutJob>> {
    db.all(
        &CLAIM_LOGOUTS,
        &[limit.into(), now.into(), lease.into()],
        |row| {
            Ok(LogoutJob {
                id: get(row, "id")?,
                env: env_slug(get(row, "env")?)?,
                client_id: get(row, "client_id")?,
                user_id: get(row, "user_id")?,
                session_id: get(row, "session_id")?,
                uri: get(row, "uri")?,
                attempts: get(row, "attempts")?,
            })
        },
    )
    .await
}

static FINISH_LOGOUT: Sql = Sql::new("DELETE FROM oidc_logout_queue WHERE id = ?1");

pub(crate) async fn finish_logout<D: Db>(
    db: &mut D,
    id: i64,
    record: Option<&AuditRecord>,
) -> StoreResult<()> {
    db.run(&FINISH_LOGOUT, &[id.into()]).await?;
    if let Some(record) = record {
        audit::insert(db, record).await?;
    }
    Ok(())
}

static RETRY_LOGOUT: Sql = Sql::new(
    "UPDATE oidc_logout_queue SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1",
);

pub(crate) async fn retry_logout<D: Db>(db: &mut D, id: i64, next_at: i64) -> StoreResult<()> {
    db.run(&RETRY_LOGOUT, &[id.into(), next_at.into()]).await
}
