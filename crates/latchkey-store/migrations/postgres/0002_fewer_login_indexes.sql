-- Fewer index entries written per login, as SQLite's migration 0002. Every session and login
-- transaction is written once and deleted once; each index on it is more work both times.
-- - (user_id) beside (env, user_id): a user's rows are found through (env, user_id), with the
--   env read from the user (every row's env is its user's: the foreign key says so).
-- - setup_token_id is NULL for every login that did not start from a setup link: index only
--   the others (opening a link again finds the logins it opened before through it).

DROP INDEX sessions_user;
DROP INDEX login_transactions_user;
DROP INDEX login_transactions_setup;
CREATE INDEX login_transactions_setup ON login_transactions (setup_token_id)
    WHERE setup_token_id IS NOT NULL;
