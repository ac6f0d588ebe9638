//! The login, replay, lockout, session-lifetime, reset, enforce-MFA and OpenID Connect use
//! cases, on both stores and a test clock: moving time is a call, never a sleep, so a TOTP step, a lock or a session's
//! end is reached exactly.
//!
//! Every test runs twice: on SQLite (a file in a temporary directory) and on PostgreSQL (a
//! database of its own on `LATCHKEY_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, dropped afterwards). Where PostgreSQL cannot be
//! reached its half skips with a printed reason, unless `LATCHKEY_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`), which makes it fail instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod admin;
mod fixture;
mod lockout;
mod logins;
mod oidc;
mod sessions;

/// Each test, once per store.
macro_rules! on_both_stores {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::$module::$name(crate::fixture::Fixture::sqlite().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(f) = crate::fixture::Fixture::postgres().await {
                        crate::$module::$name(f).await;
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    logins::a_login_takes_the_password_then_a_fresh_code,
    logins::a_code_is_never_accepted_twice,
    logins::of_twelve_concurrent_submissions_of_one_code_exactly_one_wins,
    lockout::wrong_codes_lock_the_account_on_the_policys_schedule,
    sessions::a_session_ends_at_its_max_age_and_after_its_idle_timeout,
    admin::resets_sign_out_and_ask_for_a_new_password_or_device,
    admin::enforcing_mfa_signs_out_whoever_has_none,
    admin::an_api_token_records_its_use_at_most_once_a_minute,
    oidc::codes_and_tokens_live_their_time_and_no_longer_than_the_session,
    oidc::a_rotated_key_is_published_before_it_signs_and_kept_after,
    oidc::deliveries_retry_on_their_schedule_and_give_up_after_a_day,
);
