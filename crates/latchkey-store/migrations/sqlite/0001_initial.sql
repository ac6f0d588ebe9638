-- Latchkey schema, SQLite. Every concept of SPEC §1. Timestamps are Unix seconds (INTEGER).
-- Released migrations are never edited: add a new file.

-- Facts about the database itself (the sealing key's fingerprint).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE environments (
    slug                   TEXT PRIMARY KEY
                           CHECK (length(slug) BETWEEN 1 AND 63 AND slug NOT GLOB '*[^a-z0-9-]*' AND substr(slug, 1, 1) <> '-'),
    name                   TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    mfa_policy             TEXT NOT NULL CHECK (mfa_policy IN ('off', 'optional', 'required')),
    session_max_age        INTEGER NOT NULL CHECK (session_max_age >= 1),
    session_idle_timeout   INTEGER CHECK (session_idle_timeout IS NULL OR session_idle_timeout >= 1),
    totp_window            INTEGER NOT NULL DEFAULT 1 CHECK (totp_window BETWEEN 0 AND 10),
    lockout_threshold      INTEGER NOT NULL DEFAULT 5 CHECK (lockout_threshold >= 1),
    lockout_base_seconds   INTEGER NOT NULL DEFAULT 60 CHECK (lockout_base_seconds >= 1),
    lockout_max_seconds    INTEGER NOT NULL DEFAULT 3600 CHECK (lockout_max_seconds >= lockout_base_seconds),
    ip_failures_per_minute INTEGER NOT NULL DEFAULT 30 CHECK (ip_failures_per_minute >= 1),
    issuer                 TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    -- MFA is always required in `system` (SPEC §2).
    CHECK (slug <> 'system' OR mfa_policy = 'required')
) STRICT;

CREATE TABLE users (
    id                       TEXT PRIMARY KEY,
    env                      TEXT NOT NULL REFERENCES environments (slug) ON DELETE CASCADE,
    email                    TEXT NOT NULL,
    -- NFC + lower case: the uniqueness and look-up key (emails compare case-insensitively).
    email_norm               TEXT NOT NULL,
    name                     TEXT NOT NULL,
    role                     TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    state                    TEXT NOT NULL CHECK (state IN ('invited', 'active', 'disabled')),
    mfa_enforced             INTEGER NOT NULL DEFAULT 0 CHECK (mfa_enforced IN (0, 1)),
    password_hash            TEXT,
    password_change_required INTEGER NOT NULL DEFAULT 1 CHECK (password_change_required IN (0, 1)),
    last_login_at            INTEGER,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    UNIQUE (env, email_norm),
    -- For the environment-scoped listing with cursor (ids are UUIDv7: they sort by time).
    UNIQUE (env, id)
) STRICT;

-- TOTP authenticators. `confirmed_at` NULL: a pending enrolment (active only once confirmed).
-- `last_step`: the last accepted time step; only later steps are ever accepted again.
CREATE TABLE authenticators (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label         TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    secret_sealed BLOB NOT NULL,
    algorithm     TEXT NOT NULL DEFAULT 'SHA1' CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits        INTEGER NOT NULL DEFAULT 6 CHECK (digits IN (6, 8)),
    period        INTEGER NOT NULL DEFAULT 30 CHECK (period BETWEEN 1 AND 300),
    confirmed_at  INTEGER,
    last_step     INTEGER CHECK (last_step IS NULL OR last_step >= 0),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX authenticators_user ON authenticators (user_id, confirmed_at);

CREATE TABLE recovery_codes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, code_hash)
) STRICT;

-- (env, user_id) must name a user of that environment: nothing crosses environments (A4).
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    env              TEXT NOT NULL,
    authenticated_at INTEGER NOT NULL,
    amr              TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    FOREIGN KEY (env, user_id) REFERENCES users (env, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_env_user ON sessions (env, user_id);

-- The state between the steps of one login (SPEC §3), single-use and short-lived.
CREATE TABLE login_transactions (
    id                    TEXT PRIMARY KEY,
    token_hash            TEXT NOT NULL UNIQUE,
    user_id               TEXT NOT NULL,
    env                   TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('password_change_required', 'mfa_setup_required', 'mfa_required')),
    amr                   TEXT NOT NULL DEFAULT '',
    -- A TOTP secret offered during MFA setup, sealed, until it is confirmed.
    pending_secret_sealed BLOB,
    setup_token_id        TEXT,
    redirect              TEXT,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    FOREIGN KEY (env, user_id) REFERENCES users (env, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX login_transactions_user ON login_transactions (user_id);
CREATE INDEX login_transactions_env_user ON login_transactions (env, user_id);
CREATE INDEX login_transactions_setup ON login_transactions (setup_token_id);

-- One-time setup links (invitation, password reset). Only the hash is stored.
CREATE TABLE setup_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX setup_tokens_user ON setup_tokens (user_id);

-- Automation tokens: `env` NULL means an operator token (all environments).
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    env          TEXT REFERENCES environments (slug) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_by   TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- Failure counters for lockout and throttling (SPEC §2), updated in place with
-- `failures = failures + 1 … RETURNING`, never read-then-write.
-- kind: 'password' (subject = normalised email, whether or not the user exists),
-- 'second_factor' (subject = user id), 'ip' (subject = client address).
CREATE TABLE failure_counters (
    env          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('password', 'second_factor', 'ip')),
    subject      TEXT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locks        INTEGER NOT NULL DEFAULT 0 CHECK (locks >= 0),
    locked_until INTEGER,
    window_start INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (env, kind, subject)
) STRICT, WITHOUT ROWID;

-- Append-only audit log (SPEC §4.7). No foreign keys: events outlive what they name.
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    env        TEXT NOT NULL,
    at         INTEGER NOT NULL,
    type       TEXT NOT NULL,
    actor      TEXT,
    target     TEXT,
    ip         TEXT,
    user_agent TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail     TEXT
) STRICT;
CREATE INDEX audit_events_env ON audit_events (env, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
