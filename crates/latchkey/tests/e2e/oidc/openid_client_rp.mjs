// A relying party built on openid-client (npm, OpenID-certified), driving Latchkey's OpenID
// Provider; the ID token's signature is checked again with jose against the published jwks.
//
// The same JSON-lines protocol as authlib_rp.py: {"authorize": URL} then a line with the
// callback URL; {"logout": URL} then a line with where the browser landed; {"check": NAME}
// for each verified thing; {"done": {...}} at the end. Any failure exits 1.
//
// Usage: node openid_client_rp.mjs ISSUER CLIENT_ID CLIENT_SECRET|- REDIRECT_URI POST_LOGOUT_URI

import * as client from 'openid-client';
import * as jose from 'jose';
import readline from 'node:readline';

const [issuer, clientId, secretArg, redirectUri, postLogout] = process.argv.slice(2);
const secret = secretArg === '-' ? undefined : secretArg;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const check = (name, ok, detail = '') => {
  if (!ok) {
    console.error(`check failed: ${name} ${detail}`);
    process.exit(1);
  }
  say({ check: name });
};
const next = async () => (await lines.next()).value.trim();

// Loopback development speaks plain HTTP; the library refuses it unless told.
const config = await client.discovery(
  new URL(issuer),
  clientId,
  secret,
  secret ? client.ClientSecretBasic(secret) : client.None(),
  { execute: [client.allowInsecureRequests] },
);
const meta = config.serverMetadata();
check('discovery issuer is byte-identical', meta.issuer === issuer, meta.issuer);
const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri));

async function signIn() {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  say({ authorize: url.href });
  // openid-client checks state, iss (RFC 9207), the code exchange, and the ID token's iss,
  // aud, exp and nonce.
  const tokens = await client.authorizationCodeGrant(config, new URL(await next()), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const { payload } = await jose.jwtVerify(tokens.id_token, jwks, {
    issuer,
    audience: clientId,
    algorithms: ['RS256'],
  });
  check('ID token signature (jose, jwks), iss, aud, nonce and exp', payload.nonce === nonce);
  return tokens;
}

async function rejects(promise, error) {
  try {
    await promise;
    return false;
  } catch (e) {
    return e.error === error || e.code === error || String(e).includes(error);
  }
}

// 1. Sign in, userinfo, introspection.
let tokens = await signIn();
const claims = tokens.claims();
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
check('userinfo sub is the ID token\'s', info.sub === claims.sub);
check('profile claims', typeof info.preferred_username === 'string' && Array.isArray(info.groups));
check('introspection: active', (await client.tokenIntrospection(config, tokens.access_token)).active === true);

// 2. Refresh rotates; reuse revokes the family.
const oldRefresh = tokens.refresh_token;
const refreshed = await client.refreshTokenGrant(config, oldRefresh);
check('refresh rotates the refresh token', refreshed.refresh_token !== oldRefresh);
check('the new access token works',
  (await client.fetchUserInfo(config, refreshed.access_token, claims.sub)).sub === claims.sub);
check('a reused refresh token is invalid_grant',
  await rejects(client.refreshTokenGrant(config, oldRefresh), 'invalid_grant'));
check('reuse revoked the family',
  await rejects(client.refreshTokenGrant(config, refreshed.refresh_token), 'invalid_grant'));
check('reuse revoked the family\'s access token',
  (await client.tokenIntrospection(config, refreshed.access_token)).active === false);

// 3. Revocation.
tokens = await signIn();
await client.tokenRevocation(config, tokens.refresh_token);
check('revoked refresh token: inactive',
  (await client.tokenIntrospection(config, tokens.refresh_token)).active === false);
check('revoked grant\'s access token: inactive',
  (await client.tokenIntrospection(config, tokens.access_token)).active === false);

// 4. RP-initiated logout.
tokens = await signIn();
const state = client.randomState();
const logout = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: postLogout,
  state,
});
say({ logout: logout.href });
const landed = new URL(await next());
check('back at the post-logout URI', landed.href.startsWith(postLogout), landed.href);
check('logout state echoed', landed.searchParams.get('state') === state);
check('after logout the access token is inactive',
  (await client.tokenIntrospection(config, tokens.access_token)).active === false);
check('after logout the refresh token is refused',
  await rejects(client.refreshTokenGrant(config, tokens.refresh_token), 'invalid_grant'));

say({ done: { sub: claims.sub, sid: tokens.claims().sid } });
process.exit(0);
