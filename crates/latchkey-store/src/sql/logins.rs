//! Login transactions and setup links (SPEC §3), the unit of work of a login step (`write`),
//! and a failed attempt's (`record_failure`: the counter, the logins a lock ends). A code step's claim-judge-settle attempt is each backend's (SQLite runs it as one
//! writer job; PostgreSQL composes it from the store's units).

use latchkey_core::{login::Step, model::EnvSlug, token::TokenHash};
use latchkey_service::{
    StoreError,
    store::{
        Failure, FailureOutcome, LoginNext, LoginSubject, LoginTxnView, LoginWrite, NewLoginTxn,
        SetupTokenView, StoreResult, conflict,
    },
};

use super::{
    Db, Sql, Value, audit, authenticators, credentials, exists, get, rows, sessions, throttle,
};
use crate::corrupt;

pub(crate) static EXPIRE_ALL: Sql = Sql::new(concat!(
    "UPDATE login_transactions AS s SET expires_at = ?2 WHERE ",
    of_user!(),
    " AND s.expires_at > ?2"
));

/// Expire every pending login transaction of a user now (a lockout): the rows stay so a
/// step on one of them can still be told apart from an unknown token.
pub(crate) async fn expire_all<D: Db>(db: &mut D, user_id: &str, now: i64) -> StoreResult<()> {
    db.run(&EXPIRE_ALL, &[user_id.into(), now.into()]).await
}

pub(crate) static END_ALL: Sql = Sql::new(concat!(
    "DELETE FROM login_transactions AS s WHERE ",
    of_user!()
));

/// End every pending login transaction of a user.
pub(crate) async fn end_all<D: Db>(db: &mut D, user_id: &str) -> StoreResult<u64> {
    db.exec(&END_ALL, &[user_id.into()]).await
}

static SUBJECT: Sql = Sql::new(concat!(
    "SELECT ",
    user_columns!(),
    ", u.password_hash, u.password_change_required FROM users u \
     WHERE u.env = ?1 AND u.email_norm = ?2"
));

/// Who a login by email is about: the user, their password's hash, whether it must change.
pub(crate) async fn subject<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<LoginSubject>> {
    db.one(&SUBJECT, &[env.as_str().into(), email_norm.into()], |row| {
        Ok(LoginSubject {
            user: rows::user(row)?,
            password_hash: get(row, "password_hash")?,
            password_change_required: get(row, "password_change_required")?,
        })
    })
    .await
}

static TXN: Sql = Sql::new(concat!(
    "SELECT t.id AS t_id, t.state AS t_state, t.amr AS t_amr, t.pending_secret_sealed, \
     t.setup_token_id, t.expires_at AS t_expires_at, t.mfa_demanded, \
     u.password_change_required, ",
    user_columns!(),
    ", ",
    env_columns!(),
    " FROM login_transactions t JOIN users u ON u.id = t.user_id \
     JOIN environments e ON e.slug = u.env WHERE t.token_hash = ?1"
));

/// A login transaction by its token's hash, expired or not (the caller tells a lockout from
/// an expiry), with its user and environment.
pub(crate) async fn txn<D: Db>(
    db: &mut D,
    token_hash: &TokenHash,
) -> StoreResult<Option<LoginTxnView>> {
    db.one(&TXN, &[token_hash.as_str().into()], |row| {
        let state: String = get(row, "t_state")?;
        Ok(LoginTxnView {
            id: get(row, "t_id")?,
            state: Step::parse(&state).ok_or_else(|| corrupt("login state", &state))?,
            amr: get(row, "t_amr")?,
            pending_secret_sealed: row.blob("pending_secret_sealed")?,
            setup_token_id: get(row, "setup_token_id")?,
            expires_at: get(row, "t_expires_at")?,
            mfa_demanded: get(row, "mfa_demanded")?,
            password_change_required: get(row, "password_change_required")?,
            user: rows::user(row)?,
            environment: rows::environment(row)?,
        })
    })
    .await
}

static SET_PENDING_SECRET: Sql = Sql::new(
    "UPDATE login_transactions SET pending_secret_sealed = ?2 \
     WHERE id = ?1 AND state = 'mfa_setup_required' AND expires_at > ?3 \
     AND pending_secret_sealed IS NULL",
);

/// The secret offered at MFA setup inside a login, sealed: set once, so a reload shows it again.
pub(crate) async fn set_pending_secret<D: Db>(
    db: &mut D,
    id: &str,
    sealed: &[u8],
    now: i64,
) -> StoreResult<()> {
    let args = [id.into(), sealed.into(), now.into()];
    db.exec_one(
        &SET_PENDING_SECRET,
        &args,
        StoreError::Conflict(conflict::LOGIN),
    )
    .await
}

static INSERT: Sql = Sql::new(
    "INSERT INTO login_transactions (id, token_hash, user_id, env, state, amr, setup_token_id, \
     created_at, expires_at, mfa_demanded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
);

async fn insert<D: Db>(db: &mut D, t: &NewLoginTxn) -> StoreResult<()> {
    db.run(
        &INSERT,
        &[
            t.id.as_str().into(),
            t.token_hash.as_str().into(),
            t.user_id.as_str().into(),
            t.env.as_str().into(),
            t.state.as_str().into(),
            t.amr.as_str().into(),
            t.setup_token_id.as_deref().into(),
            t.created_at.into(),
            t.expires_at.into(),
            t.mfa_demanded.into(),
        ],
    )
    .await
}

static SETUP_TOKEN: Sql = Sql::new(
    "SELECT t.id, t.user_id, u.env, t.expires_at, u.email_norm FROM setup_tokens t \
     JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?1 AND t.used_at IS NULL \
     AND t.expires_at > ?2 AND u.state <> 'disabled'",
);

/// A live setup link by its token's hash, with whom it is for.
pub(crate) async fn setup_token<D: Db>(
    db: &mut D,
    token_hash: &TokenHash,
    now: i64,
) -> StoreResult<Option<SetupTokenView>> {
    db.one(
        &SETUP_TOKEN,
        &[token_hash.as_str().into(), now.into()],
        |row| {
            Ok(SetupTokenView {
                id: get(row, "id")?,
                user_id: get(row, "user_id")?,
                env: rows::env_slug(get(row, "env")?)?,
                expires_at: get(row, "expires_at")?,
                email_normalized: get(row, "email_norm")?,
            })
        },
    )
    .await
}

static SETUP_LINK_LIVE: Sql = Sql::new(
    "SELECT 1 FROM setup_tokens WHERE id = ?1 AND user_id = ?2 AND used_at IS NULL \
     AND expires_at > ?3",
);

/// Through the partial index of migration 0002 (`setup_token_id = ?` implies `IS NOT NULL`).
pub(crate) static END_FROM_LINK: Sql =
    Sql::new("DELETE FROM login_transactions WHERE setup_token_id = ?1");

/// A setup link starts a login (any login it started before ends).
pub(crate) async fn begin_setup<D: Db>(db: &mut D, t: &NewLoginTxn, now: i64) -> StoreResult<()> {
    let setup_id = t
        .setup_token_id
        .as_deref()
        .ok_or(StoreError::Conflict(conflict::SETUP_LINK))?;
    let live = exists(
        db,
        &SETUP_LINK_LIVE,
        &[setup_id.into(), t.user_id.as_str().into(), now.into()],
    )
    .await?;
    if !live {
        return Err(StoreError::Conflict(conflict::SETUP_LINK));
    }
    db.exec(&END_FROM_LINK, &[setup_id.into()]).await?;
    insert(db, t).await
}

static ADVANCE: Sql = Sql::new(
    "UPDATE login_transactions SET state = ?3, amr = ?4, pending_secret_sealed = NULL \
     WHERE id = ?1 AND state = ?2 AND expires_at > ?5",
);

static FINISH: Sql =
    Sql::new("DELETE FROM login_transactions WHERE id = ?1 AND state = ?2 AND expires_at > ?3");

/// The step a write comes from must still be where it was (once, and live).
async fn consume_from<D: Db>(db: &mut D, w: &LoginWrite) -> StoreResult<()> {
    let Some((id, state)) = &w.from else {
        return Ok(());
    };
    let [id, from, now]: [Value<'_>; 3] = [id.as_str().into(), state.as_str().into(), w.now.into()];
    let gone = StoreError::Conflict(conflict::LOGIN);
    match &w.next {
        LoginNext::Advance { state: next, amr } => {
            let args = [id, from, next.as_str().into(), amr.as_str().into(), now];
            db.exec_one(&ADVANCE, &args, gone).await
        }
        LoginNext::Authenticate(_) | LoginNext::Begin(_) => {
            db.exec_one(&FINISH, &[id, from, now], gone).await
        }
    }
}

static SET_PASSWORD: Sql = Sql::new(
    "UPDATE users SET password_hash = ?2, password_change_required = ?4, \
     state = CASE WHEN state = 'invited' THEN 'active' ELSE state END, updated_at = ?3 \
     WHERE id = ?1 AND state <> 'disabled'",
);

static USE_SETUP_LINK: Sql = Sql::new(
    "UPDATE setup_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
);

static REHASH: Sql = Sql::new("UPDATE users SET password_hash = ?2 WHERE id = ?1");

static SIGNED_IN: Sql = Sql::new(
    "UPDATE users SET last_login_at = ?2, \
     state = CASE WHEN state = 'invited' THEN 'active' ELSE state END WHERE id = ?1",
);

/// One login step, all or nothing.
pub(crate) async fn write<D: Db>(db: &mut D, w: &LoginWrite) -> StoreResult<()> {
    consume_from(db, w).await?;
    let user: Value<'_> = w.user_id.as_str().into();
    if let Some(p) = &w.password {
        let args = [user, p.hash.as_str().into(), w.now.into(), false.into()];
        db.exec_one(&SET_PASSWORD, &args, StoreError::Conflict(conflict::LOGIN))
            .await?;
        if let Some(setup_id) = &p.setup_token_id {
            let args = [setup_id.as_str().into(), w.now.into()];
            let spent = StoreError::Conflict(conflict::SETUP_LINK);
            db.exec_one(&USE_SETUP_LINK, &args, spent).await?;
        }
    }
    if let Some(hash) = &w.rehash {
        db.exec(&REHASH, &[user, hash.as_str().into()]).await?;
    }
    if let Some(proof) = &w.proof {
        credentials::consume_proof(db, &w.user_id, proof, w.now).await?;
    }
    if let Some(a) = &w.new_authenticator {
        // A first authenticator set up inside a login: only while the user still has none
        // (another login or the account page may have enrolled one meanwhile).
        if authenticators::has_confirmed(db, &w.user_id).await? {
            return Err(StoreError::Conflict(conflict::LOGIN));
        }
        authenticators::insert(db, a).await?;
    }
    if let Some(codes) = &w.new_recovery_codes {
        credentials::replace_recovery_codes(db, &w.user_id, codes, w.now).await?;
    }
    for key in &w.reset_counters {
        throttle::reset(db, key).await?;
    }
    match &w.next {
        LoginNext::Begin(t) => insert(db, t).await?,
        LoginNext::Advance { .. } => {}
        LoginNext::Authenticate(session) => {
            sessions::insert(db, session).await?;
            db.exec(&SIGNED_IN, &[user, w.now.into()]).await?;
        }
    }
    for record in &w.audit {
        audit::insert(db, record).await?;
    }
    Ok(())
}

/// Record a failed attempt as the service decided it (`Failure::new`): the account user's row
/// first (one lock order on PostgreSQL), the lock it sets and the pending logins it ends
/// (SECURITY L4), the client's address counted, the records written.
pub(crate) async fn record_failure<D: Db>(db: &mut D, f: &Failure) -> StoreResult<FailureOutcome> {
    if let Some(id) = &f.user_id {
        db.lock_user(id).await?;
    }
    if let Some(until) = f.lock_until {
        throttle::lock(db, &f.key, until, f.now).await?;
        if let Some(id) = &f.user_id {
            expire_all(db, id, f.now).await?;
        }
    }
    if let Some(ip) = &f.ip {
        throttle::count_ip(db, &f.key.env, ip, f.now).await?;
    }
    for record in &f.audit {
        audit::insert(db, record).await?;
    }
    Ok(FailureOutcome {
        locked_until: f.lock_until,
    })
}
