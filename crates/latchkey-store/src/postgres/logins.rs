//! Login transactions, setup links and the unit of work of a login step.

use latchkey_core::{login::Step, model::EnvSlug};
use latchkey_service::{
    StoreError,
    store::{
        LoginNext, LoginSubject, LoginTxnView, LoginWrite, NewLoginTxn, SetupTokenView,
        StoreResult, conflict,
    },
};
use sqlx::{PgPool, Postgres, Transaction};

use super::{audit, authenticators, exec::Pg, rows, sessions};
use crate::{corrupt, map_err, sql};

pub(super) async fn subject(
    pool: &PgPool,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<LoginSubject>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {}, u.password_hash, u.password_change_required FROM users u WHERE u.env = $1 AND u.email_norm = $2",
        rows::USER_COLUMNS
    ));
    let Some(row) = sqlx::query(sql)
        .bind(env.as_str())
        .bind(email_norm)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    Ok(Some(LoginSubject {
        user: rows::user(&row)?,
        password_hash: rows::get(&row, "password_hash")?,
        password_change_required: rows::get(&row, "password_change_required")?,
    }))
}

pub(super) async fn txn(
    pool: &PgPool,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<LoginTxnView>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT t.id AS t_id, t.state AS t_state, t.amr AS t_amr, t.pending_secret_sealed, t.setup_token_id, \
                  t.expires_at AS t_expires_at, u.password_change_required, {}, {} \
         FROM login_transactions t JOIN users u ON u.id = t.user_id JOIN environments e ON e.slug = u.env \
         WHERE t.token_hash = $1 AND $2 IS NOT NULL",
        rows::USER_COLUMNS,
        rows::ENV_JOINED_COLUMNS
    ));
    let Some(row) = sqlx::query(sql)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(map_err)?
    else {
        return Ok(None);
    };
    let user = rows::user(&row)?;
    let state: String = rows::get(&row, "t_state")?;
    let environment = rows::environment_joined(&row)?;
    Ok(Some(LoginTxnView {
        id: rows::get(&row, "t_id")?,
        state: Step::parse(&state).ok_or_else(|| corrupt("login state", &state))?,
        amr: rows::get(&row, "t_amr")?,
        pending_secret_sealed: rows::get(&row, "pending_secret_sealed")?,
        setup_token_id: rows::get(&row, "setup_token_id")?,
        expires_at: rows::get(&row, "t_expires_at")?,
        password_change_required: rows::get(&row, "password_change_required")?,
        user,
        environment,
    }))
}

pub(super) async fn set_pending_secret(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
    sealed: &[u8],
    now: i64,
) -> StoreResult<()> {
    let changed = sqlx::query(
        "UPDATE login_transactions SET pending_secret_sealed = $2 \
         WHERE id = $1 AND state = 'mfa_setup_required' AND expires_at > $3 \
         AND pending_secret_sealed IS NULL",
    )
    .bind(id)
    .bind(sealed)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(conflict::LOGIN))
    }
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    t: &NewLoginTxn,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO login_transactions (id, token_hash, user_id, env, state, amr, setup_token_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.id)
    .bind(t.token_hash.as_str())
    .bind(&t.user_id)
    .bind(t.env.as_str())
    .bind(t.state.as_str())
    .bind(&t.amr)
    .bind(t.setup_token_id.as_deref())
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// End every pending login transaction of a user.
pub(super) async fn end_all(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
) -> StoreResult<u64> {
    sql::logins::end_all(&mut Pg(tx), user_id).await
}

pub(super) async fn setup_token(
    pool: &PgPool,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<SetupTokenView>> {
    let row: Option<(String, String, String, i64, String)> = sqlx::query_as(
                "SELECT t.id, t.user_id, u.env, t.expires_at, u.email_norm FROM setup_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 AND u.state <> 'disabled'",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(map_err)?;
    row.map(|(id, user_id, env, expires_at, email_normalized)| {
        Ok(SetupTokenView {
            id,
            user_id,
            env: EnvSlug::parse(&env).map_err(|_| corrupt("env", &env))?,
            expires_at,
            email_normalized,
        })
    })
    .transpose()
}

pub(super) async fn begin_setup(
    tx: &mut Transaction<'static, Postgres>,
    t: &NewLoginTxn,
    now: i64,
) -> StoreResult<()> {
    super::lock_user(tx, &t.user_id).await?;
    let setup_id = t
        .setup_token_id
        .as_deref()
        .ok_or(StoreError::Conflict(conflict::SETUP_LINK))?;
    let valid: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM setup_tokens WHERE id = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(setup_id)
    .bind(&t.user_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_err)?;
    if valid.is_none() {
        return Err(StoreError::Conflict(conflict::SETUP_LINK));
    }
    sqlx::query("DELETE FROM login_transactions WHERE setup_token_id = $1")
        .bind(setup_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    insert(tx, t).await
}

async fn consume_from(tx: &mut Transaction<'static, Postgres>, w: &LoginWrite) -> StoreResult<()> {
    let Some((id, state)) = &w.from else {
        return Ok(());
    };
    let changed = match &w.next {
        LoginNext::Advance { state: next, amr } => sqlx::query(
            "UPDATE login_transactions SET state = $3, amr = $4, pending_secret_sealed = NULL \
             WHERE id = $1 AND state = $2 AND expires_at > $5",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(next.as_str())
        .bind(amr)
        .bind(w.now),
        LoginNext::Authenticate(_) | LoginNext::Begin(_) => sqlx::query(
            "DELETE FROM login_transactions WHERE id = $1 AND state = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(w.now),
    }
    .execute(&mut **tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(conflict::LOGIN))
    }
}

/// One login step, all or nothing.
pub(super) async fn write(
    tx: &mut Transaction<'static, Postgres>,
    w: &LoginWrite,
) -> StoreResult<()> {
    super::lock_user(tx, &w.user_id).await?;
    consume_from(tx, w).await?;
    if let Some(p) = &w.password {
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $2, password_change_required = FALSE, \
             state = CASE WHEN state = 'invited' THEN 'active' ELSE state END, updated_at = $3 \
             WHERE id = $1 AND state <> 'disabled'",
        )
        .bind(&w.user_id)
        .bind(&p.hash)
        .bind(w.now)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict(conflict::LOGIN));
        }
        if let Some(setup_id) = &p.setup_token_id {
            let used = sqlx::query(
                "UPDATE setup_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(setup_id)
            .bind(w.now)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if used != 1 {
                return Err(StoreError::Conflict(conflict::SETUP_LINK));
            }
        }
    }
    if let Some(hash) = &w.rehash {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(&w.user_id)
            .bind(hash)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    if let Some(proof) = &w.proof {
        sql::credentials::consume_proof(&mut Pg(tx), &w.user_id, proof, w.now).await?;
    }
    if let Some(a) = &w.new_authenticator {
        // A first authenticator set up inside a login: only while the user still has none
        // (another login or the account page may have enrolled one meanwhile).
        let has: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        )
        .bind(&w.user_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
        if has.is_some() {
            return Err(StoreError::Conflict(conflict::LOGIN));
        }
        authenticators::insert(tx, a).await?;
    }
    if let Some(codes) = &w.new_recovery_codes {
        sql::credentials::replace_recovery_codes(&mut Pg(tx), &w.user_id, codes, w.now).await?;
    }
    for key in &w.reset_counters {
        sql::throttle::reset(&mut Pg(tx), key).await?;
    }
    match &w.next {
        LoginNext::Begin(t) => insert(tx, t).await?,
        LoginNext::Advance { .. } => {}
        LoginNext::Authenticate(session) => {
            sessions::insert(tx, session).await?;
            sqlx::query(
                "UPDATE users SET last_login_at = $2, state = CASE WHEN state = 'invited' THEN 'active' ELSE state END \
                 WHERE id = $1",
            )
            .bind(&w.user_id)
            .bind(w.now)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        }
    }
    for record in &w.audit {
        audit::insert(tx, record).await?;
    }
    Ok(())
}
