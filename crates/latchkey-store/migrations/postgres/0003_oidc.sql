-- OpenID Connect (SPEC §9): applications, signing keys, authorization requests waiting for a
-- login, codes, tokens, which applications a session signed into, and the back-channel
-- logout queue. Every token dies with the session that issued it: the foreign keys delete
-- them with it, and the trigger below queues a logout token for each application that has a
-- back-channel URI, in the transaction that ended the session, whatever ended it.

CREATE TABLE oidc_clients (
    env                       TEXT NOT NULL REFERENCES environments (slug) ON DELETE CASCADE,
    client_id                 TEXT NOT NULL CHECK (length(client_id) BETWEEN 1 AND 64),
    name                      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    client_type               TEXT NOT NULL CHECK (client_type IN ('confidential', 'public')),
    -- SHA-256 of the secret (256 random bits need no stretching); NULL for public clients.
    secret_hash               TEXT,
    require_pkce              BOOLEAN NOT NULL,
    -- One URI per line (a URI holds no line break), compared byte for byte.
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    backchannel_logout_uri    TEXT,
    require_mfa               BOOLEAN NOT NULL,
    access_token_ttl          BIGINT NOT NULL CHECK (access_token_ttl >= 1),
    refresh_token             BOOLEAN NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    PRIMARY KEY (env, client_id),
    CHECK ((client_type = 'public') = (secret_hash IS NULL))
);

-- An environment's RSA keys, sealed with the master key. Generation 1 is made at the first
-- use; a rotation adds the next, which signs from `signs_from` (published before that).
CREATE TABLE oidc_signing_keys (
    kid            TEXT PRIMARY KEY,
    env            TEXT NOT NULL REFERENCES environments (slug) ON DELETE CASCADE,
    generation     BIGINT NOT NULL CHECK (generation >= 1),
    private_sealed BYTEA NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    signs_from     BIGINT NOT NULL,
    UNIQUE (env, generation)
);

-- An authorization request waiting for its browser to sign in (any node finishes it).
CREATE TABLE oidc_requests (
    handle_hash    TEXT PRIMARY KEY,
    env            TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    state          TEXT,
    nonce          TEXT,
    code_challenge TEXT,
    max_age        BIGINT,
    -- `prompt=login`: only a login after `created_at` satisfies the request.
    fresh_login    BOOLEAN NOT NULL,
    -- A second factor is needed (`require_mfa` client or `acr_values`).
    needs_mfa      BOOLEAN NOT NULL,
    login_hint     TEXT,
    -- The session the browser had when the request began: never the one that satisfies a
    -- request for a new login (times are seconds; a session of the same second is not new).
    prior_session  TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    FOREIGN KEY (env, client_id) REFERENCES oidc_clients (env, client_id) ON DELETE CASCADE
);

-- Which applications a session signed into: whom to tell when it ends.
CREATE TABLE oidc_grants (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    env        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id),
    FOREIGN KEY (env, client_id) REFERENCES oidc_clients (env, client_id) ON DELETE CASCADE
);

-- Codes live 60 s and are used once; a used code is kept until it expires, to revoke what it
-- issued if it comes again.
CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY,
    env            TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    session_id     TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    family_id      TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    FOREIGN KEY (env, client_id) REFERENCES oidc_clients (env, client_id) ON DELETE CASCADE
);

-- Access and refresh tokens (hashes). A family is what one code issued, refreshes included.
CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    family_id  TEXT NOT NULL,
    env        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- A refresh token already exchanged: presented again, its family is revoked.
    used_at    BIGINT,
    FOREIGN KEY (env, client_id) REFERENCES oidc_clients (env, client_id) ON DELETE CASCADE
);
CREATE INDEX oidc_tokens_family ON oidc_tokens (family_id);
CREATE INDEX oidc_tokens_session ON oidc_tokens (session_id);
CREATE INDEX oidc_codes_session ON oidc_codes (session_id);

-- Logout tokens to POST (at least once). `next_attempt_at` 0 is due at once; a sender claims
-- a row by moving it forward.
CREATE TABLE oidc_logout_queue (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    env             TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    uri             TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_logout_queue_due ON oidc_logout_queue (next_attempt_at);

CREATE FUNCTION oidc_session_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO oidc_logout_queue (env, client_id, user_id, session_id, uri)
    SELECT g.env, g.client_id, g.user_id, g.session_id, c.backchannel_logout_uri
    FROM oidc_grants g JOIN oidc_clients c ON c.env = g.env AND c.client_id = g.client_id
    WHERE g.session_id = OLD.id AND c.backchannel_logout_uri IS NOT NULL;
    RETURN OLD;
END;
$$;
CREATE TRIGGER oidc_session_ended BEFORE DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION oidc_session_ended();

-- A login that an application's request needs a second factor for (step-up, SPEC §9).
ALTER TABLE login_transactions ADD COLUMN mfa_demanded BOOLEAN NOT NULL DEFAULT FALSE;
