-- Latchkey schema, PostgreSQL: the same tables, rules and meanings as migrations/sqlite.
-- Timestamps are Unix seconds (BIGINT). Released migrations are never edited.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE environments (
    slug                   TEXT PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name                   TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    mfa_policy             TEXT NOT NULL CHECK (mfa_policy IN ('off', 'optional', 'required')),
    session_max_age        BIGINT NOT NULL CHECK (session_max_age >= 1),
    session_idle_timeout   BIGINT CHECK (session_idle_timeout IS NULL OR session_idle_timeout >= 1),
    totp_window            BIGINT NOT NULL DEFAULT 1 CHECK (totp_window BETWEEN 0 AND 10),
    lockout_threshold      BIGINT NOT NULL DEFAULT 5 CHECK (lockout_threshold >= 1),
    lockout_base_seconds   BIGINT NOT NULL DEFAULT 60 CHECK (lockout_base_seconds >= 1),
    lockout_max_seconds    BIGINT NOT NULL DEFAULT 3600 CHECK (lockout_max_seconds >= lockout_base_seconds),
    ip_failures_per_minute BIGINT NOT NULL DEFAULT 30 CHECK (ip_failures_per_minute >= 1),
    issuer                 TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    CHECK (slug <> 'system' OR mfa_policy = 'required')
);

CREATE TABLE users (
    id                       TEXT PRIMARY KEY,
    env                      TEXT NOT NULL REFERENCES environments (slug) ON DELETE CASCADE,
    email                    TEXT NOT NULL,
    email_norm               TEXT NOT NULL,
    name                     TEXT NOT NULL,
    role                     TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    state                    TEXT NOT NULL CHECK (state IN ('invited', 'active', 'disabled')),
    mfa_enforced             BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash            TEXT,
    password_change_required BOOLEAN NOT NULL DEFAULT TRUE,
    last_login_at            BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    UNIQUE (env, email_norm),
    UNIQUE (env, id)
);

CREATE TABLE authenticators (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label         TEXT NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    secret_sealed BYTEA NOT NULL,
    algorithm     TEXT NOT NULL DEFAULT 'SHA1' CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits        BIGINT NOT NULL DEFAULT 6 CHECK (digits IN (6, 8)),
    period        BIGINT NOT NULL DEFAULT 30 CHECK (period BETWEEN 1 AND 300),
    confirmed_at  BIGINT,
    last_step     BIGINT CHECK (last_step IS NULL OR last_step >= 0),
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX authenticators_user ON authenticators (user_id, confirmed_at);

CREATE TABLE recovery_codes (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, code_hash)
);

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL,
    env              TEXT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    amr              TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    ip               TEXT,
    user_agent       TEXT,
    FOREIGN KEY (env, user_id) REFERENCES users (env, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_env_user ON sessions (env, user_id);

CREATE TABLE login_transactions (
    id                    TEXT PRIMARY KEY,
    token_hash            TEXT NOT NULL UNIQUE,
    user_id               TEXT NOT NULL,
    env                   TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('password_change_required', 'mfa_setup_required', 'mfa_required')),
    amr                   TEXT NOT NULL DEFAULT '',
    pending_secret_sealed BYTEA,
    setup_token_id        TEXT,
    redirect              TEXT,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    FOREIGN KEY (env, user_id) REFERENCES users (env, id) ON DELETE CASCADE
);
CREATE INDEX login_transactions_user ON login_transactions (user_id);
CREATE INDEX login_transactions_env_user ON login_transactions (env, user_id);
CREATE INDEX login_transactions_setup ON login_transactions (setup_token_id);

CREATE TABLE setup_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX setup_tokens_user ON setup_tokens (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    env          TEXT REFERENCES environments (slug) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE failure_counters (
    env          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('password', 'second_factor', 'ip')),
    subject      TEXT NOT NULL,
    failures     BIGINT NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locks        BIGINT NOT NULL DEFAULT 0 CHECK (locks >= 0),
    locked_until BIGINT,
    window_start BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (env, kind, subject)
);

CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    env        TEXT NOT NULL,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    actor      TEXT,
    target     TEXT,
    ip         TEXT,
    user_agent TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail     TEXT
);
CREATE INDEX audit_events_env ON audit_events (env, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
