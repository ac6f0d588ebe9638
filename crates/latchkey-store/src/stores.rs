//! The storage traits implemented for every store, each method written once.
//!
//! Each method is one line of a table: how it runs, its signature, and the unit of work
//! (`sql/`) it runs. [`implement!`] writes the table out three times — for [`SqliteStore`],
//! [`PgStore`] and [`AnyStore`] — so a new operation is one line here and one unit of work in
//! `sql/`, whatever the number of backends. How a method runs:
//!
//! | kind     | SQLite                                         | PostgreSQL             |
//! |----------|------------------------------------------------|------------------------|
//! | `read`   | inline, on an idle read-only connection        | on a pooled connection |
//! | `scan`   | on the blocking pool (it may read many rows)   | on a pooled connection |
//! | `cached` | the session cache, then as `read` (`cache.rs`) | on a pooled connection |
//! | `write`  | one synced transaction on the writer thread    | one transaction        |
//! | `claim`  | a transaction flushed by the next synced one   | one transaction        |
//! | `own_*`  | `sqlite/special.rs`                            | `postgres/special.rs`  |
//!
//! `own_*` are the two methods that differ by nature: a backup (`VACUUM INTO`; `pg_dump`'s
//! job on PostgreSQL) and a login's code step (one writer job on SQLite; the other units,
//! composed, on PostgreSQL). `AnyStore` times every method and, on PostgreSQL, runs it again
//! after a transient failure where that is safe (`retry.rs`): any method after a conflict, and
//! a `read`, `scan` or `cached` one after a broken connection. `own_once` never runs again (the
//! code step owns its judge).
//!
//! SQLite's writer thread and blocking pool take `'static` work, so a method's arguments are
//! carried there owned ([`Carry`]) and lent back to the unit of work as it takes them.

use std::{borrow::Borrow, path::Path, time::Instant};

use latchkey_core::{
    model::{EnvSlug, Environment, LockoutSettings, User},
    token::TokenHash,
};
use latchkey_service::{
    AuditRecord,
    metrics::StoreLatency,
    store::{
        ApiTokenRecord, ApiTokenStore, AuditQuery, AuditStore, AuthRequest, AuthenticatorRecord,
        Claim, ClientRecord, CodeRecord, Confirmation, CounterKey, CredentialStore, DatabaseStore,
        EnforceCounts, EnvStats, EnvironmentStore, Failure, FailureOutcome, KeyCheck, LoginStore,
        LoginSubject, LoginTxnView, LoginWrite, LogoutJob, NewApiToken, NewAuthenticator,
        NewLoginTxn, NewRecoveryCode, NewSetupToken, NewUser, OidcStore, Proof, SessionRecord,
        SessionStore, SessionView, SetupTokenView, SigningKeyRecord, StepAttempt, StepOutcome,
        StoreResult, TokenRecord, TokenView, UserQuery, UserStore, UserUpdate,
    },
};

use crate::{
    AnyStore, PgStore, SqliteStore,
    any_store::Backend,
    map_err,
    postgres::{self, exec::Pg},
    retry,
    sql::{self, run_now},
    sqlite::{self, exec::Lite, writer::Durability},
};

/// An argument taken owned to SQLite's writer thread or blocking pool ([`Carry::carry`]), and
/// lent back there as the unit of work takes it ([`Carry::lend`]).
pub(crate) trait Carry<'a> {
    type Owned: Send + 'static;
    fn carry(self) -> Self::Owned;
    fn lend(owned: &'a Self::Owned) -> Self;
}

impl<'a, T: ToOwned + ?Sized> Carry<'a> for &'a T
where
    T::Owned: Send + 'static,
{
    type Owned = T::Owned;
    fn carry(self) -> T::Owned {
        self.to_owned()
    }
    fn lend(owned: &'a T::Owned) -> Self {
        owned.borrow()
    }
}

impl<'a, T: ToOwned + ?Sized> Carry<'a> for Option<&'a T>
where
    T::Owned: Send + 'static,
{
    type Owned = Option<T::Owned>;
    fn carry(self) -> Self::Owned {
        self.map(ToOwned::to_owned)
    }
    fn lend(owned: &'a Self::Owned) -> Self {
        owned.as_ref().map(Borrow::borrow)
    }
}

macro_rules! carry_copies {
    ($($t:ty),*) => {$(
        impl Carry<'_> for $t {
            type Owned = Self;
            fn carry(self) -> Self { self }
            fn lend(owned: &Self) -> Self { *owned }
        }
    )*};
}

carry_copies!(bool, u64, i64);

/// One method on SQLite.
macro_rules! on_sqlite {
    (read, $s:ident, $name:ident, $unit:path, $($arg:ident: $ty:ty),*) => {
        $s.fast.read(|c| run_now($unit(&mut Lite(c) $(, $arg)*)))
    };
    // The session check: from the cache while no commit came since (`sqlite/cache.rs`).
    (cached, $s:ident, $name:ident, $unit:path, $($arg:ident: $ty:ty),*) => {
        $s.fast.$name($($arg),*)
    };
    (scan, $s:ident, $name:ident, $unit:path, $($arg:ident: $ty:ty),*) => {{
        $(let $arg = <$ty as Carry<'_>>::carry($arg);)*
        $s.fast
            .scan(move |c| run_now($unit(&mut Lite(c) $(, <$ty as Carry<'_>>::lend(&$arg))*)))
            .await
    }};
    (write, $s:ident, $name:ident, $unit:path, $($arg:ident: $ty:ty),*) => {
        on_sqlite!(@writer Durability::Synced, $s, $unit, $($arg: $ty),*)
    };
    // On disk with the attempt's verdict, which is written (synced) before it is answered.
    (claim, $s:ident, $name:ident, $unit:path, $($arg:ident: $ty:ty),*) => {
        on_sqlite!(@writer Durability::WithNextSync, $s, $unit, $($arg: $ty),*)
    };
    (@writer $durability:expr, $s:ident, $unit:path, $($arg:ident: $ty:ty),*) => {{
        $(let $arg = <$ty as Carry<'_>>::carry($arg);)*
        $s.writer
            .run_with($durability, move |tx| {
                run_now($unit(&mut Lite(tx) $(, <$ty as Carry<'_>>::lend(&$arg))*))
            })
            .await
    }};
    ($own:ident, $s:ident, $name:ident, , $($arg:ident: $ty:ty),*) => {
        sqlite::special::$name($s $(, $arg)*).await
    };
}

/// One method on PostgreSQL.
macro_rules! on_postgres {
    (read, $s:ident, $name:ident, $unit:path, $($arg:ident),*) => {
        $unit(&mut Pg(&mut *$s.read().await?) $(, $arg)*).await
    };
    (scan, $($rest:tt)*) => {
        on_postgres!(read, $($rest)*)
    };
    (cached, $($rest:tt)*) => {
        on_postgres!(read, $($rest)*)
    };
    (write, $s:ident, $name:ident, $unit:path, $($arg:ident),*) => {{
        let mut tx = $s.begin().await?;
        let done = $unit(&mut Pg(&mut tx) $(, $arg)*).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }};
    (claim, $($rest:tt)*) => {
        on_postgres!(write, $($rest)*)
    };
    ($own:ident, $s:ident, $name:ident, , $($arg:ident),*) => {
        postgres::special::$name($s $(, $arg)*).await
    };
}

/// One method on whichever backend [`AnyStore`] holds, timed, and run again after a transient
/// failure where that is safe.
macro_rules! on_any {
    (own_once, $s:ident, $name:ident, $($arg:ident),*) => {
        match &$s.backend {
            Backend::Sqlite(store) => store.$name($($arg),*).await,
            Backend::Postgres(store) => store.$name($($arg),*).await,
        }
    };
    ($kind:ident, $s:ident, $name:ident, $($arg:ident),*) => {
        match &$s.backend {
            Backend::Sqlite(store) => store.$name($($arg),*).await,
            Backend::Postgres(store) => {
                let mut attempt = 0;
                loop {
                    let result = store.$name($($arg),*).await;
                    let Err(e) = &result else { break result };
                    let operation = stringify!($name);
                    // Only a read runs again after a broken connection.
                    let reads = matches!(stringify!($kind), "read" | "scan" | "cached");
                    let Some(wait) = retry::delay(reads, e, attempt) else {
                        break result;
                    };
                    tracing::warn!(operation, attempt, error = %e, "running the operation again");
                    $s.latency.count_retry(operation);
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    };
}

/// A trait's table, written out for the three stores; `any { … }` holds what `AnyStore`
/// answers itself.
macro_rules! implement {
    ($trait:ident {
        $( $kind:ident $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $(= $unit:path)?; )*
    } $(any { $($any:item)* })?) => {
        impl $trait for SqliteStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    on_sqlite!($kind, self, $name, $($unit)?, $($arg: $ty),*)
                }
            )*
        }

        impl $trait for PgStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    on_postgres!($kind, self, $name, $($unit)?, $($arg),*)
                }
            )*
        }

        impl $trait for AnyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    let started = Instant::now();
                    let result = on_any!($kind, self, $name, $($arg),*);
                    self.latency.observe(stringify!($name), started.elapsed());
                    result
                }
            )*
            $($($any)*)?
        }
    };
}

implement!(DatabaseStore {
    read ping() -> () = sql::meta::ping;
    write claim_key_fingerprint(fingerprint: &str) -> KeyCheck = sql::meta::claim_key_fingerprint;
    read key_fingerprint() -> Option<String> = sql::meta::key_fingerprint;
    write bootstrap(system: &Environment, operator: &NewUser, setup: &NewSetupToken, audit: &[AuditRecord]) -> bool = sql::meta::bootstrap;
    write purge_expired(now: i64) -> u64 = sql::meta::purge_expired;
    own_write backup_to(path: &Path) -> ();
} any {
    fn latency(&self) -> Option<&StoreLatency> {
        Some(&self.latency)
    }
});

implement!(EnvironmentStore {
    write create_environment(env: &Environment, audit: &AuditRecord) -> () = sql::environments::create;
    read get_environment(slug: &EnvSlug) -> Option<Environment> = sql::environments::get;
    read list_environments() -> Vec<Environment> = sql::environments::list;
    write update_environment(env: &Environment, previous: &Environment, audit: &AuditRecord) -> () = sql::environments::change;
    scan stats(env: &EnvSlug, now: i64) -> EnvStats = sql::manage::stats;
    write enforce_mfa(env: &EnvSlug, all: bool, audit: &AuditRecord) -> EnforceCounts = sql::manage::enforce_mfa;
    scan enforce_preview(env: &EnvSlug, all: bool) -> EnforceCounts = sql::manage::enforce_preview;
});

implement!(UserStore {
    write create_user(user: &NewUser, setup: &NewSetupToken, audit: &AuditRecord) -> () = sql::users::create;
    read get_user(env: &EnvSlug, id: &str) -> Option<User> = sql::users::get;
    read find_user_by_email(env: &EnvSlug, email_normalized: &str) -> Option<User> = sql::users::find_by_email;
    scan list_users(env: &EnvSlug, query: &UserQuery) -> Vec<User> = sql::users::list;
    write update_user(env: &EnvSlug, id: &str, update: &UserUpdate, now: i64, audit: &[AuditRecord]) -> Option<(User, u64)> = sql::manage::update_user;
    write reset_password(env: &EnvSlug, user_id: &str, setup: &NewSetupToken, now: i64, audit: &AuditRecord) -> u64 = sql::manage::reset_password;
    write reset_mfa(env: &EnvSlug, user_id: &str, audit: &AuditRecord) -> (u64, u64) = sql::manage::reset_mfa;
    write sign_out(env: &EnvSlug, user_id: &str, audit: &AuditRecord) -> u64 = sql::manage::sign_out;
    write clear_lockout(env: &EnvSlug, user_id: &str, email_normalized: &str, audit: &AuditRecord) -> bool = sql::manage::clear_lockout;
    write delete_user(env: &EnvSlug, id: &str, audit: &AuditRecord) -> bool = sql::manage::delete_user;
});

implement!(CredentialStore {
    write insert_authenticator(authenticator: &NewAuthenticator) -> () = sql::authenticators::insert;
    read list_authenticators(user_id: &str) -> Vec<AuthenticatorRecord> = sql::authenticators::list;
    write advance_totp_step(authenticator_id: &str, step: u64, now: i64) -> bool = sql::authenticators::advance_step;
    write change_password(user_id: &str, hash: &str, keep_session: Option<&str>, now: i64, audit: &AuditRecord) -> u64 = sql::account::change_password;
    write confirm_authenticator(confirmation: &Confirmation) -> () = sql::account::confirm_authenticator;
    write remove_authenticator(user_id: &str, authenticator_id: &str, keep_one: bool, proof: &Proof, now: i64, audit: &AuditRecord) -> () = sql::account::remove_authenticator;
    write replace_recovery_codes(user_id: &str, codes: &[NewRecoveryCode], proof: &Proof, now: i64, audit: &AuditRecord) -> () = sql::account::replace_recovery_codes;
    write consume_proof(user_id: &str, proof: &Proof, now: i64) -> () = sql::account::consume_proof;
    scan recovery_codes_remaining(user_id: &str) -> u32 = sql::credentials::remaining;
    read has_recovery_code(user_id: &str, hash: &TokenHash) -> bool = sql::credentials::has_code;
});

implement!(LoginStore {
    read login_subject(env: &EnvSlug, email_normalized: &str) -> Option<LoginSubject> = sql::logins::subject;
    read login_txn(token_hash: &TokenHash) -> Option<LoginTxnView> = sql::logins::txn;
    write set_pending_secret(txn_id: &str, sealed: &[u8], now: i64) -> () = sql::logins::set_pending_secret;
    write write_login(write: &LoginWrite) -> () = sql::logins::write;
    read setup_token(token_hash: &TokenHash, now: i64) -> Option<SetupTokenView> = sql::logins::setup_token;
    write begin_setup_login(txn: &NewLoginTxn, now: i64) -> () = sql::logins::begin_setup;
    claim claim_attempt(key: &CounterKey, settings: &LockoutSettings, now: i64) -> Claim = sql::throttle::claim;
    write record_failure(failure: &Failure) -> FailureOutcome = sql::logins::record_failure;
    own_once attempt_step(attempt: StepAttempt) -> StepOutcome;
    read locked_until(key: &CounterKey, now: i64) -> Option<i64> = sql::throttle::locked_until;
    write reset_counter(key: &CounterKey) -> () = sql::throttle::reset;
    read ip_failures(env: &EnvSlug, ip: &str, now: i64) -> (u32, i64) = sql::throttle::ip_failures;
    write record_ip_failure(env: &EnvSlug, ip: &str, now: i64, audit: Option<&AuditRecord>) -> () = sql::throttle::record_ip_failure;
});

implement!(SessionStore {
    cached session_by_token(token_hash: &TokenHash) -> Option<SessionView> = sql::sessions::by_token;
    read session_by_id(id: &str) -> Option<SessionView> = sql::sessions::by_id;
    write touch_session(id: &str, now: i64) -> () = sql::account::touch_session;
    write end_session(user_id: &str, id: &str, audit: Option<&AuditRecord>) -> bool = sql::account::end_session;
    scan list_sessions(user_id: &str) -> Vec<SessionRecord> = sql::sessions::list;
});

implement!(ApiTokenStore {
    write create_api_token(token: &NewApiToken, audit: &AuditRecord) -> () = sql::api_tokens::create;
    read list_api_tokens(env: Option<&EnvSlug>) -> Vec<ApiTokenRecord> = sql::api_tokens::list;
    write revoke_api_token(env: Option<&EnvSlug>, id: &str, now: i64, audit: &AuditRecord) -> bool = sql::api_tokens::revoke;
    read find_api_token(hash: &TokenHash) -> Option<ApiTokenRecord> = sql::api_tokens::find;
    write mark_api_token_used(id: &str, now: i64) -> () = sql::api_tokens::mark_used;
});

implement!(AuditStore {
    write append_audit(record: &AuditRecord) -> () = sql::audit::insert;
    scan list_audit(env: &EnvSlug, query: &AuditQuery) -> Vec<AuditRecord> = sql::audit::list;
});

implement!(OidcStore {
    write create_client(client: &ClientRecord, audit: &AuditRecord) -> () = sql::oidc::create_client;
    read list_clients(env: &EnvSlug) -> Vec<ClientRecord> = sql::oidc::list_clients;
    read get_client(env: &EnvSlug, client_id: &str) -> Option<ClientRecord> = sql::oidc::get_client;
    write update_client(client: &ClientRecord, audit: &AuditRecord) -> bool = sql::oidc::update_client;
    write delete_client(env: &EnvSlug, client_id: &str, audit: &AuditRecord) -> bool = sql::oidc::delete_client;
    read signing_keys(env: &EnvSlug) -> Vec<SigningKeyRecord> = sql::oidc::signing_keys;
    write add_signing_key(key: &SigningKeyRecord, audit: Option<&AuditRecord>) -> () = sql::oidc::add_signing_key;
    write save_auth_request(request: &AuthRequest) -> () = sql::oidc::save_request;
    read auth_request(handle_hash: &TokenHash, now: i64) -> Option<AuthRequest> = sql::oidc::request;
    write issue_code(handle_hash: Option<&TokenHash>, code: &CodeRecord, now: i64, audit: &AuditRecord) -> bool = sql::oidc::issue_code;
    read code(code_hash: &TokenHash) -> Option<CodeRecord> = sql::oidc::code;
    write exchange_code(code_hash: &TokenHash, now: i64, tokens: &[TokenRecord]) -> bool = sql::oidc::exchange_code;
    cached oidc_token(token_hash: &TokenHash) -> Option<TokenView> = sql::oidc::token;
    write rotate_refresh(old_hash: &TokenHash, now: i64, tokens: &[TokenRecord]) -> bool = sql::oidc::rotate_refresh;
    write revoke_family(family_id: &str, audit: Option<&AuditRecord>) -> u64 = sql::oidc::revoke_family;
    write revoke_token(token_hash: &TokenHash) -> () = sql::oidc::revoke_token;
    read logout_due(now: i64) -> bool = sql::oidc::logout_due;
    write claim_logouts(now: i64, lease: i64, limit: i64) -> Vec<LogoutJob> = sql::oidc::claim_logouts;
    write finish_logout(id: i64, audit: Option<&AuditRecord>) -> () = sql::oidc::finish_logout;
    write retry_logout(id: i64, next_attempt_at: i64) -> () = sql::oidc::retry_logout;
});
