//! The units of work, written once for both backends (`docs/ARCHITECTURE.md`, "Storage").
//!
//! A unit of work is an `async fn` over [`Db`], a small executor with four verbs: run a
//! statement ([`Db::exec`]), read the first row ([`Db::one`]) or every row ([`Db::all`]), and
//! lock a user's row for the rest of the transaction ([`Db::lock_user`], a no-op on SQLite,
//! whose one writer already runs transactions one at a time). Statements are [`Sql`] values in
//! SQLite's spelling (`?1`, `?2`…), which PostgreSQL gets as `$1`, `$2`…; the few statements
//! whose text really differs name both spellings ([`Sql::dialects`]).
//!
//! Each backend implements [`Db`] and keeps only its connection handling: SQLite runs a unit of
//! work on its writer thread or on an inline reader (`rusqlite`, synchronous: its futures are
//! ready at once, and [`run_now`] polls them there), PostgreSQL awaits it on a pooled
//! connection or inside a transaction.

/// The rows of user `?1` in a table aliased `s` that has an `(env, user_id)` index (sessions,
/// login transactions): a row's env is its user's (the foreign key), and the env makes that
/// index usable (migration 0002).
macro_rules! of_user {
    () => {
        "s.env = (SELECT env FROM users WHERE id = ?1) AND s.user_id = ?1"
    };
}

/// The columns `rows::user` reads, of `users u` (with whether they have a confirmed
/// authenticator).
macro_rules! user_columns {
    () => {
        "u.id, u.env, u.email, u.name, u.role, u.state, u.mfa_enforced, \
         u.last_login_at, u.created_at, u.updated_at, \
         EXISTS (SELECT 1 FROM authenticators a WHERE a.user_id = u.id \
         AND a.confirmed_at IS NOT NULL) AS mfa_enrolled"
    };
}

/// The columns `rows::session_record` reads, of `sessions s`.
macro_rules! session_columns {
    () => {
        "s.id AS s_id, s.user_id AS s_user_id, s.env AS s_env, s.authenticated_at, s.amr, \
         s.created_at AS s_created_at, s.last_seen_at, s.ip, s.user_agent"
    };
}

/// The columns `rows::environment` reads, of `environments e` (alone or joined into a row).
macro_rules! env_columns {
    () => {
        "e.slug AS e_slug, e.name AS e_name, e.mfa_policy AS e_mfa_policy, \
         e.session_max_age AS e_session_max_age, e.session_idle_timeout AS e_session_idle_timeout, \
         e.totp_window AS e_totp_window, e.lockout_threshold AS e_lockout_threshold, \
         e.lockout_base_seconds AS e_lockout_base_seconds, \
         e.lockout_max_seconds AS e_lockout_max_seconds, \
         e.ip_failures_per_minute AS e_ip_failures_per_minute, e.issuer AS e_issuer, \
         e.created_at AS e_created_at, e.updated_at AS e_updated_at"
    };
}

pub(crate) mod account;
pub(crate) mod api_tokens;
pub(crate) mod audit;
pub(crate) mod authenticators;
pub(crate) mod credentials;
pub(crate) mod environments;
pub(crate) mod logins;
pub(crate) mod manage;
pub(crate) mod meta;
pub(crate) mod oidc;
mod rows;
pub(crate) mod sessions;
pub(crate) mod throttle;
pub(crate) mod users;

use std::{
    future::Future,
    pin::pin,
    sync::OnceLock,
    task::{Context, Poll, Waker},
};

use latchkey_service::{StoreError, store::StoreResult};

/// A statement: its SQLite text, and PostgreSQL's, derived once (or given).
pub(crate) struct Sql {
    sqlite: &'static str,
    postgres: Option<&'static str>,
    derived: OnceLock<String>,
}

impl Sql {
    /// A statement both databases read alike, with `?N` placeholders.
    pub(crate) const fn new(sqlite: &'static str) -> Self {
        Self {
            sqlite,
            postgres: None,
            derived: OnceLock::new(),
        }
    }

    /// A statement whose text differs: each database's own spelling (PostgreSQL's with `$N`).
    pub(crate) const fn dialects(sqlite: &'static str, postgres: &'static str) -> Self {
        Self {
            sqlite,
            postgres: Some(postgres),
            derived: OnceLock::new(),
        }
    }

    pub(crate) fn sqlite(&self) -> &'static str {
        self.sqlite
    }

    /// PostgreSQL's text: `?N` becomes `$N`.
    pub(crate) fn postgres(&'static self) -> &'static str {
        if let Some(text) = self.postgres {
            return text;
        }
        self.derived
            .get_or_init(|| dollar_placeholders(self.sqlite))
    }
}

/// `?N` → `$N`, outside quoted strings (our statements quote only literals, never `?`).
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A value bound to a placeholder. Every kind carries its `NULL`, so PostgreSQL knows a null's
/// type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Bool(Option<bool>),
}

/// `Value`s from the Rust types bound to statements.
macro_rules! values {
    ($($variant:ident: $($t:ty),*;)*) => {$($(
        impl<'a> From<$t> for Value<'a> {
            fn from(v: $t) -> Self {
                Self::$variant(v.into())
            }
        }
    )*)*};
}

values! {
    Int: i64, Option<i64>;
    Text: &'a str, Option<&'a str>;
    Blob: &'a [u8];
    Bool: bool;
}

/// A row as both backends give it: columns by name, `None` for `NULL`. A value of another type
/// than asked is an error (corruption or a bug), never a panic.
pub(crate) trait Row {
    fn int(&self, column: &str) -> StoreResult<Option<i64>>;
    fn text(&self, column: &str) -> StoreResult<Option<String>>;
    fn blob(&self, column: &str) -> StoreResult<Option<Vec<u8>>>;
    fn boolean(&self, column: &str) -> StoreResult<Option<bool>>;
}

/// A column's value as a Rust type.
pub(crate) trait Column: Sized {
    fn read(row: &dyn Row, column: &str) -> StoreResult<Self>;
}

fn present<T>(value: Option<T>, column: &str) -> StoreResult<T> {
    value.ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
}

/// [`Column`] for a type and its `Option`, read by one of [`Row`]'s methods.
macro_rules! columns {
    ($($t:ty: $method:ident),*) => {$(
        impl Column for $t {
            fn read(row: &dyn Row, column: &str) -> StoreResult<Self> {
                present(row.$method(column)?, column)
            }
        }

        impl Column for Option<$t> {
            fn read(row: &dyn Row, column: &str) -> StoreResult<Self> {
                row.$method(column)
            }
        }
    )*};
}

columns!(i64: int, String: text, Vec<u8>: blob, bool: boolean);

/// One column of a row, by name.
pub(crate) fn get<T: Column>(row: &dyn Row, column: &str) -> StoreResult<T> {
    T::read(row, column)
}

/// The executor a unit of work runs on: a transaction (writes) or a connection (reads).
pub(crate) trait Db {
    /// Run a statement; the rows it changed.
    fn exec(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
    ) -> impl Future<Output = StoreResult<u64>>;

    /// Run a statement whose count of changed rows does not matter.
    fn run(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
    ) -> impl Future<Output = StoreResult<()>> {
        let ran = self.exec(sql, args);
        async move { ran.await.map(drop) }
    }

    /// Run a statement that must change exactly one row: `otherwise` when it changed none.
    fn exec_one(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        otherwise: StoreError,
    ) -> impl Future<Output = StoreResult<()>> {
        let ran = self.exec(sql, args);
        async move {
            if ran.await? == 1 {
                Ok(())
            } else {
                Err(otherwise)
            }
        }
    }

    /// The first row of a query, read by `read`.
    fn one<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        read: impl FnOnce(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Option<T>>>;

    /// Every row of a query, each read by `read`.
    fn all<T>(
        &mut self,
        sql: &'static Sql,
        args: &[Value<'_>],
        read: impl FnMut(&dyn Row) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>>;

    /// Lock a user's row until the transaction ends, so that writes about one user run one
    /// after the other and see each other (a no-op where one writer runs every transaction).
    fn lock_user(&mut self, user_id: &str) -> impl Future<Output = StoreResult<()>>;

    /// Lock a user's row to delete it (a stronger lock than [`Db::lock_user`]'s; a no-op on
    /// SQLite).
    fn lock_user_to_delete(&mut self, user_id: &str) -> impl Future<Output = StoreResult<()>>;

    /// Queue this transaction behind any other that asked for `queue` until it ends (an
    /// advisory lock on PostgreSQL; a no-op on SQLite): for checks that count rows other
    /// transactions may be changing.
    fn serialize(&mut self, queue: Queue) -> impl Future<Output = StoreResult<()>>;
}

/// The queues [`Db::serialize`] knows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Queue {
    /// Changes to operators (`system`'s active admins), so two concurrent demotions cannot
    /// each count the other.
    Operators,
    /// The first start, so nodes starting together on an empty database create `system` once.
    Bootstrap,
}

impl Queue {
    /// The advisory lock's key: fixed, and Latchkey's own.
    pub(crate) fn key(self) -> i64 {
        match self {
            Self::Operators => 7_270_001,
            Self::Bootstrap => 7_270_002,
        }
    }
}

/// Whether a query finds a row.
pub(crate) async fn exists<D: Db>(
    db: &mut D,
    sql: &'static Sql,
    args: &[Value<'_>],
) -> StoreResult<bool> {
    Ok(db.one(sql, args, |_| Ok(())).await?.is_some())
}

/// Run a unit of work whose futures never wait (SQLite's, on `rusqlite`) to its end, here.
pub(crate) fn run_now<T>(work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let mut work = pin!(work);
    match work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Corrupt(
            "a SQLite unit of work waited (a bug: its statements are synchronous)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        static GIVEN: Sql = Sql::dialects("SELECT instr(a, ?1)", "SELECT strpos(a, $1)");
        assert_eq!(
            dollar_placeholders("SELECT '?1' FROM t WHERE a = ?1 AND b IN (?2, ?10)"),
            "SELECT '?1' FROM t WHERE a = $1 AND b IN ($2, $10)"
        );
        assert_eq!(GIVEN.postgres(), "SELECT strpos(a, $1)");
        assert_eq!(GIVEN.sqlite(), "SELECT instr(a, ?1)");
    }

    #[test]
    fn a_unit_of_work_that_waits_is_refused_not_blocked_on() {
        let waits = async {
            std::future::pending::<()>().await;
            Ok(())
        };
        assert!(matches!(run_now(waits), Err(StoreError::Corrupt(_))));
        assert_eq!(run_now(async { Ok(7) }).ok(), Some(7));
    }
}
