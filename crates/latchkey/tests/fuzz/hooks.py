"""schemathesis hooks for the API fuzz run (`crates/latchkey/tests/e2e/fuzz.rs` starts the server,
sets the variables below and runs schemathesis with this module).

A fuzzer that knows only the OpenAPI document reaches most operations with 4xx alone: it cannot
sign in, hold a TOTP secret, or know a user's id. These hooks give it what a real client has,
for a share of the generated cases (the rest stay as generated):

- credentials, by an auth provider: the operator's API token in the `operator` run; in the
  `session` run an environment admin's session, and for each operation that changes the
  caller's own account (logout, ending a session, password, authenticators, recovery codes) a
  fresh user of its own, so no case can end the session or lock the account the others use;
- real values in place of generated ones: the environment's slug, the id of a user made for
  the case, a setup token, a login token at the right step, a TOTP code computed here
  (RFC 6238, SHA-1, as `otpauth_uri` says), a recovery code.

Everything the hooks themselves send goes through `requests`, outside schemathesis's record,
and must succeed: a hook that cannot prepare its case raises, and the run fails.
"""

import base64
import hashlib
import hmac
import os
import random
import secrets
import struct
import threading
import time
import urllib.parse

import requests
import schemathesis

BASE = os.environ["LATCHKEY_FUZZ_URL"].rstrip("/")
API = BASE + "/api/v1"
MODE = os.environ["LATCHKEY_FUZZ_MODE"]  # "operator" or "session"
ENV = os.environ["LATCHKEY_FUZZ_ENV"]  # the environment this run works in
OPERATOR_TOKEN = os.environ["LATCHKEY_FUZZ_OPERATOR_TOKEN"]
# The share of generated cases given real values.
SHARE = float(os.environ.get("LATCHKEY_FUZZ_SHARE", "0.5"))

# The hooks' own choices, repeatable for a seed (apart from the server's random ids).
_rng = random.Random(int(os.environ.get("LATCHKEY_FUZZ_SEED", "0")))
_http = requests.Session()
_lock = threading.Lock()


class HookFailed(RuntimeError):
    """The server refused a step a hook needs: a bug in the hooks or in the server."""


def _call(method, path, token=None, body=None, expect=(200,)):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = _http.request(method, API + path, json=body, headers=headers, timeout=30)
    if r.status_code not in expect:
        raise HookFailed(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
    return r.json() if r.content else None


def _password():
    return "fz-" + secrets.token_urlsafe(18)


def totp(otpauth_uri, at=None):
    """The code of `otpauth_uri`'s secret at time `at` (RFC 6238 with RFC 4226's truncation)."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(otpauth_uri).query)
    secret = query["secret"][0]
    digits = int(query.get("digits", ["6"])[0])
    period = int(query.get("period", ["30"])[0])
    algorithm = query.get("algorithm", ["SHA1"])[0].lower()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // period)
    mac = hmac.new(key, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def invite(env=ENV, role="user", enforced=False):
    """A new user of `env`, invited by the operator: `(id, email, setup_token)`."""
    email = f"fz-{secrets.token_hex(6)}@example.com"
    made = _call(
        "POST", f"/environments/{env}/users", OPERATOR_TOKEN, {"email": email, "role": role}, (201,)
    )
    user_id = made["user"]["id"]
    if enforced:
        _call("PATCH", f"/environments/{env}/users/{user_id}", OPERATOR_TOKEN, {"mfa_enforced": True})
    return user_id, email, made["setup_token"]


def login_token_after_password(env=ENV, enforced=False):
    """A login that has set its password: `(answer, email, password)`."""
    _, email, setup = invite(env, enforced=enforced)
    started = _call("POST", f"/environments/{env}/setup-link", body={"token": setup})
    password = _password()
    answer = _call(
        "POST",
        f"/environments/{env}/login/password",
        body={"login_token": started["login_token"], "new_password": password},
    )
    return answer, email, password


class Actor:
    """A user of the session run's environment with a session of their own."""

    def __init__(self, enrolled=False):
        answer, self.email, self.password = login_token_after_password()
        if answer["status"] != "authenticated":
            raise HookFailed(f"a new user's login ended in {answer['status']}")
        self.token = answer["session"]["token"]
        self.recovery_codes = []
        self.authenticator_id = None
        if enrolled:
            began = _call("POST", "/me/mfa/totp", self.token, {"current_password": self.password})
            done = _call(
                "POST",
                f"/me/mfa/totp/{began['enrollment_id']}/confirm",
                self.token,
                {"code": totp(began["otpauth_uri"]), "label": "fuzz"},
            )
            self.authenticator_id = done["authenticator_id"]
            self.recovery_codes = list(done.get("recovery_codes") or [])

    def session_id(self):
        return _call("GET", "/session", self.token)["session"]["id"]


class Owner:
    """The session run's long-lived caller: an admin of the environment without MFA, so that
    signing in again, when a case has ended the session after all, takes only the password."""

    def __init__(self):
        _, self.email, setup = invite(role="admin")
        started = _call("POST", f"/environments/{ENV}/setup-link", body={"token": setup})
        self.password = _password()
        _call(
            "POST",
            f"/environments/{ENV}/login/password",
            body={"login_token": started["login_token"], "new_password": self.password},
        )
        self.token = None
        self.checked = 0.0

    def session(self):
        """A live session token; checked again at most every two seconds."""
        now = time.monotonic()
        if self.token is None or now - self.checked > 2:
            alive = self.token is not None and (
                _http.get(API + "/session", headers={"Authorization": f"Bearer {self.token}"}, timeout=30).status_code
                == 200
            )
            if not alive:
                answer = _call(
                    "POST",
                    f"/environments/{ENV}/login",
                    body={"email": self.email, "password": self.password},
                )
                self.token = answer["session"]["token"]
            self.checked = now
        return self.token


_owner = None
# The actor whose session a case carries, by session token (the auth provider chooses the
# actor; `before_call` fills the case for that actor).
_actors = {}

# Operations that change the caller's own account: each case gets a fresh user.
OWN_ACCOUNT = {
    ("POST", "/api/v1/logout"): False,
    ("DELETE", "/api/v1/me/sessions/{id}"): False,
    ("POST", "/api/v1/me/password"): False,
    ("POST", "/api/v1/me/mfa/totp"): False,
    ("POST", "/api/v1/me/mfa/totp/{enrollment_id}/confirm"): False,
    ("DELETE", "/api/v1/me/mfa/totp/{id}"): True,
    ("POST", "/api/v1/me/recovery-codes"): True,
}


def _key(operation):
    return (operation.method.upper(), operation.path)


@schemathesis.auth(refresh_interval=None)
class Credentials:
    def get(self, case, ctx):
        global _owner
        if MODE == "operator":
            return OPERATOR_TOKEN
        with _lock:
            enrolled = OWN_ACCOUNT.get(_key(ctx.operation))
            if enrolled is not None:
                actor = Actor(enrolled)
                _actors[actor.token] = actor
                return actor.token
            if _owner is None:
                _owner = Owner()
            return _owner.session()

    def set(self, case, data, ctx):
        case.headers = dict(case.headers or {})
        case.headers["Authorization"] = f"Bearer {data}"


def _real():
    return _rng.random() < SHARE


def _body(case):
    return case.body if isinstance(case.body, dict) else {}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    key = _key(case.operation)
    bearer = (case.headers or {}).get("Authorization", "")
    actor = _actors.pop(bearer.removeprefix("Bearer "), None)
    if key in OWN_ACCOUNT and actor is None:
        return  # no session of a case's own (a probe without credentials): leave it as it is
    real = _real()
    if "env" in case.path_parameters and (real or _rng.random() < 0.6):
        case.path_parameters["env"] = ENV
    if not real:
        return
    with _lock:
        fill = FILLERS.get(key)
        if fill is not None:
            fill(case, actor)


# What a real client sends, by operation: each filler edits the case in place.


def _user_id(case, actor):
    case.path_parameters["env"] = ENV
    case.path_parameters["id"] = invite()[0]


def _enforce(case, actor):
    case.path_parameters["env"] = ENV
    _call("PATCH", f"/environments/{ENV}", OPERATOR_TOKEN, {"mfa_policy": "optional"})


def _login(case, actor):
    global _owner
    case.path_parameters["env"] = ENV
    if _owner is None:
        _owner = Owner()
    case.body = {"email": _owner.email, "password": _owner.password}


def _setup_link(case, actor):
    case.path_parameters["env"] = ENV
    case.body = {"token": invite()[2]}


def _new_password(case, actor):
    case.path_parameters["env"] = ENV
    _, _, setup = invite()
    started = _call("POST", f"/environments/{ENV}/setup-link", body={"token": setup})
    case.body = {"login_token": started["login_token"], "new_password": _password()}


def _mfa_setup(case, actor):
    case.path_parameters["env"] = ENV
    answer, _, _ = login_token_after_password(enforced=True)
    case.body = {"login_token": answer["login_token"]}


def _mfa_confirm(case, actor):
    case.path_parameters["env"] = ENV
    answer, _, _ = login_token_after_password(enforced=True)
    setup = _call("POST", f"/environments/{ENV}/login/mfa/setup", body={"login_token": answer["login_token"]})
    case.body = {"login_token": answer["login_token"], "code": totp(setup["otpauth_uri"]), "label": "fuzz"}


def _second_factor(case, actor):
    case.path_parameters["env"] = ENV
    enrolled = Actor(enrolled=True)
    answer = _call(
        "POST", f"/environments/{ENV}/login", body={"email": enrolled.email, "password": enrolled.password}
    )
    case.body = {"login_token": answer["login_token"], "recovery_code": enrolled.recovery_codes[0]}


def _end_session(case, actor):
    case.path_parameters["id"] = actor.session_id()


def _change_password(case, actor):
    case.body = {"current_password": actor.password, "new_password": _password()}


def _begin_enrolment(case, actor):
    case.body = {"current_password": actor.password}


def _confirm_enrolment(case, actor):
    began = _call("POST", "/me/mfa/totp", actor.token, {"current_password": actor.password})
    case.path_parameters["enrollment_id"] = began["enrollment_id"]
    case.body = {"code": totp(began["otpauth_uri"]), "label": "fuzz"}


def _remove_authenticator(case, actor):
    case.path_parameters["id"] = actor.authenticator_id
    case.body = {"recovery_code": actor.recovery_codes[0]}


def _new_recovery_codes(case, actor):
    case.body = {"recovery_code": actor.recovery_codes[0]}


def _revoke_token(case, actor):
    if MODE != "session":
        return  # an API token cannot make API tokens: only a person can
    case.path_parameters["env"] = ENV
    made = _call(
        "POST", f"/environments/{ENV}/api-tokens", _owner.session(), {"name": "fuzz"}, (201,)
    )
    case.path_parameters["id"] = made["api_token"]["id"]


def _client_id(case, actor):
    """An application of the run's environment, made for the case (the operator's token)."""
    case.path_parameters["env"] = ENV
    made = _call(
        "POST",
        f"/environments/{ENV}/clients",
        OPERATOR_TOKEN,
        {"name": "fuzz", "redirect_uris": ["https://app.example/cb"]},
        (201,),
    )
    case.path_parameters["client_id"] = made["client"]["client_id"]


FILLERS = {
    ("GET", "/api/v1/environments/{env}/clients/{client_id}"): _client_id,
    ("PATCH", "/api/v1/environments/{env}/clients/{client_id}"): _client_id,
    ("DELETE", "/api/v1/environments/{env}/clients/{client_id}"): _client_id,
    ("POST", "/api/v1/environments/{env}/clients/{client_id}/secret"): _client_id,
    ("GET", "/api/v1/environments/{env}/users/{id}"): _user_id,
    ("PATCH", "/api/v1/environments/{env}/users/{id}"): _user_id,
    ("DELETE", "/api/v1/environments/{env}/users/{id}"): _user_id,
    ("POST", "/api/v1/environments/{env}/users/{id}/reset-password"): _user_id,
    ("POST", "/api/v1/environments/{env}/users/{id}/reset-mfa"): _user_id,
    ("POST", "/api/v1/environments/{env}/users/{id}/sign-out"): _user_id,
    ("POST", "/api/v1/environments/{env}/users/{id}/clear-lockout"): _user_id,
    ("POST", "/api/v1/environments/{env}/enforce-mfa"): _enforce,
    ("POST", "/api/v1/environments/{env}/login"): _login,
    ("POST", "/api/v1/environments/{env}/setup-link"): _setup_link,
    ("POST", "/api/v1/environments/{env}/login/password"): _new_password,
    ("POST", "/api/v1/environments/{env}/login/mfa/setup"): _mfa_setup,
    ("POST", "/api/v1/environments/{env}/login/mfa/setup/confirm"): _mfa_confirm,
    ("POST", "/api/v1/environments/{env}/login/mfa"): _second_factor,
    ("DELETE", "/api/v1/me/sessions/{id}"): _end_session,
    ("POST", "/api/v1/me/password"): _change_password,
    ("POST", "/api/v1/me/mfa/totp"): _begin_enrolment,
    ("POST", "/api/v1/me/mfa/totp/{enrollment_id}/confirm"): _confirm_enrolment,
    ("DELETE", "/api/v1/me/mfa/totp/{id}"): _remove_authenticator,
    ("POST", "/api/v1/me/recovery-codes"): _new_recovery_codes,
    ("DELETE", "/api/v1/environments/{env}/api-tokens/{id}"): _revoke_token,
}
