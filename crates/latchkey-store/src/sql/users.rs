//! User and setup-token rows.

use latchkey_core::model::{EnvSlug, Role, User, UserState};
use latchkey_service::{
    AuditRecord,
    store::{MfaFilter, NewSetupToken, NewUser, StoreResult, UserQuery},
};

use super::{Db, Sql, Value, audit, rows};

/// `SELECT` of the columns `rows::user` reads, then `$tail`.
macro_rules! select_users {
    ($tail:literal) => {
        concat!("SELECT ", user_columns!(), " FROM users u ", $tail)
    };
}

static INSERT: Sql = Sql::new(
    "INSERT INTO users (id, env, email, email_norm, name, role, state, mfa_enforced, \
     password_hash, password_change_required, last_login_at, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
);

pub(crate) async fn insert<D: Db>(db: &mut D, new: &NewUser) -> StoreResult<()> {
    let u = &new.user;
    let normalized = u.email.normalized();
    db.run(
        &INSERT,
        &[
            u.id.as_str().into(),
            u.env.as_str().into(),
            u.email.as_str().into(),
            normalized.as_str().into(),
            u.name.as_str().into(),
            u.role.as_str().into(),
            u.state.as_str().into(),
            u.mfa_enforced.into(),
            new.password_hash.as_deref().into(),
            new.password_hash.is_none().into(),
            u.last_login_at.into(),
            u.created_at.into(),
            u.updated_at.into(),
        ],
    )
    .await
}

static VOID_SETUP_TOKENS: Sql = Sql::new("DELETE FROM setup_tokens WHERE user_id = ?1");

static INSERT_SETUP_TOKEN: Sql = Sql::new(
    "INSERT INTO setup_tokens (id, token_hash, user_id, purpose, created_at, expires_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
);

/// Void every setup link of the user.
pub(crate) async fn void_setup_tokens<D: Db>(db: &mut D, user_id: &str) -> StoreResult<()> {
    db.run(&VOID_SETUP_TOKENS, &[user_id.into()]).await
}

/// Store a setup link's hash, voiding the user's older unused links (SPEC §4.2).
pub(crate) async fn insert_setup_token<D: Db>(db: &mut D, t: &NewSetupToken) -> StoreResult<()> {
    void_setup_tokens(db, &t.user_id).await?;
    db.run(
        &INSERT_SETUP_TOKEN,
        &[
            t.id.as_str().into(),
            t.hash.as_str().into(),
            t.user_id.as_str().into(),
            t.purpose.as_str().into(),
            t.created_at.into(),
            t.expires_at.into(),
        ],
    )
    .await
}

static BY_ID: Sql = Sql::new(select_users!("WHERE u.env = ?1 AND u.id = ?2"));

/// A user by id, in `env` (a point read, inline or inside a write).
pub(crate) async fn get<D: Db>(db: &mut D, env: &EnvSlug, id: &str) -> StoreResult<Option<User>> {
    db.one(&BY_ID, &[env.as_str().into(), id.into()], rows::user)
        .await
}

static BY_EMAIL: Sql = Sql::new(select_users!("WHERE u.env = ?1 AND u.email_norm = ?2"));

pub(crate) async fn find_by_email<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    email_norm: &str,
) -> StoreResult<Option<User>> {
    db.one(
        &BY_EMAIL,
        &[env.as_str().into(), email_norm.into()],
        rows::user,
    )
    .await
}

// One static statement: absent filters are NULL parameters, so no SQL is built from input.
// "Contains" is `instr` in SQLite and `strpos` in PostgreSQL.
static LIST: Sql = Sql::dialects(
    select_users!(
        "WHERE u.env = ?1 AND (?2 IS NULL OR u.role = ?2) AND (?3 IS NULL OR u.state = ?3) \
         AND (?4 IS NULL OR instr(u.email_norm, ?4) > 0) AND (?5 IS NULL OR u.id > ?5) \
         AND (?6 IS NULL OR ?6 = EXISTS (SELECT 1 FROM authenticators a \
         WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL)) ORDER BY u.id LIMIT ?7"
    ),
    select_users!(
        "WHERE u.env = $1 AND ($2 IS NULL OR u.role = $2) AND ($3 IS NULL OR u.state = $3) \
         AND ($4 IS NULL OR strpos(u.email_norm, $4) > 0) AND ($5 IS NULL OR u.id > $5) \
         AND ($6 IS NULL OR $6 = EXISTS (SELECT 1 FROM authenticators a \
         WHERE a.user_id = u.id AND a.confirmed_at IS NOT NULL)) ORDER BY u.id LIMIT $7"
    ),
);

/// A page of an environment's users, by id.
pub(crate) async fn list<D: Db>(
    db: &mut D,
    env: &EnvSlug,
    q: &UserQuery,
) -> StoreResult<Vec<User>> {
    let mfa = q.mfa.map(|m| m == MfaFilter::Enrolled);
    db.all(
        &LIST,
        &[
            env.as_str().into(),
            q.role.map(Role::as_str).into(),
            q.state.map(UserState::as_str).into(),
            q.email_contains.as_deref().into(),
            q.after.as_deref().into(),
            Value::Bool(mfa),
            i64::from(q.limit).into(),
        ],
        rows::user,
    )
    .await
}

/// An admin invites a user: the user, their setup link, the record.
pub(crate) async fn create<D: Db>(
    db: &mut D,
    user: &NewUser,
    setup: &NewSetupToken,
    record: &AuditRecord,
) -> StoreResult<()> {
    insert(db, user).await?;
    insert_setup_token(db, setup).await?;
    audit::insert(db, record).await
}
