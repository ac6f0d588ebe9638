//! The OpenAPI 3.1 document: what the derive on [`super::ApiDoc`] produces, completed as JSON
//! with what the derive cannot say — the answers every operation shares, the constraints the
//! server enforces by parameter name, who may call what (security schemes), and how one
//! answer feeds the next request (links) — so a generated client or a fuzzer expects what
//! the server does.

use serde_json::{Value, json};
use utoipa::OpenApi as _;

use super::ApiDoc;

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return Value::Null;
    };
    complete_responses(&mut value);
    // A change names at least one setting: a PATCH whose every field is absent or `null` is
    // refused (400), except where `null` itself is the change (it clears the idle timeout or
    // the issuer).
    for (name, nullable) in [
        (
            "EnvironmentPatchRequest",
            &["session_idle_timeout", "issuer"][..],
        ),
        ("UserPatchRequest", &[][..]),
    ] {
        if let Some(schema) = value
            .pointer_mut(&format!("/components/schemas/{name}"))
            .and_then(Value::as_object_mut)
        {
            let fields: Vec<String> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let any: Vec<Value> = fields
                .iter()
                .map(|f| {
                    if nullable.contains(&f.as_str()) {
                        json!({"required": [f]})
                    } else {
                        json!({"required": [f], "properties": {f: {"not": {"type": "null"}}}})
                    }
                })
                .collect();
            schema.insert("anyOf".into(), Value::Array(any));
        }
    }
    one_of(&mut value, "MfaRequest", &["code", "recovery_code"]);
    one_of(&mut value, "FactorRequest", &["code", "recovery_code"]);
    one_of(
        &mut value,
        "ReauthRequest",
        &["code", "recovery_code", "current_password"],
    );
    constrain_properties(&mut value);
    add_security(&mut value);
    add_links(&mut value);
    value
}

/// "Exactly one of these fields, not `null`", in the words of JSON Schema.
fn one_of(doc: &mut Value, schema: &str, fields: &[&str]) {
    let Some(schema) = doc
        .pointer_mut(&format!("/components/schemas/{schema}"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let variants: Vec<Value> = fields
        .iter()
        .map(|f| {
            let others: Vec<Value> = fields
                .iter()
                .filter(|o| *o != f)
                .map(|o| json!({"required": [o], "properties": {*o: {"not": {"type": "null"}}}}))
                .collect();
            json!({
                "required": [f],
                "properties": {*f: {"type": "string"}},
                "not": {"anyOf": others}
            })
        })
        .collect();
    schema.insert("oneOf".into(), Value::Array(variants));
}

/// A TOTP code as the server reads it: six ASCII digits, spaces ignored.
const CODE: &str = "^ *(?:[0-9] *){6}$";
/// A recovery code as the server reads it: ten letters and digits of Crockford's alphabet
/// (`u` is not one), any case, dashes and spaces ignored.
const RECOVERY_CODE: &str = "^[ -]*(?:[0-9a-tv-zA-TV-Z][ -]*){10}$";
/// A label or a token name: some text that is not only white space, no control characters.
const LABEL: &str = "^(?=.*\\S)[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// A URI an application may register, as far as a pattern can say it: `https` with a plain
/// host name, or `http` on a loopback host; a port; a simple path.
const CLIENT_URI: &str = "^(https://[a-z][a-z0-9]{0,20}(\\.[a-z][a-z0-9]{0,20}){0,3}|http://(127\\.0\\.0\\.1|localhost|\\[::1\\]))(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]{0,40}){0,4}$";

/// What the server accepts for the request fields that recur, by name (request schemas only).
fn constrain_properties(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        if !name.ends_with("Request") {
            continue;
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            let extra = match field.as_str() {
                "code" => json!({"pattern": CODE, "maxLength": 64}),
                "recovery_code" => json!({"pattern": RECOVERY_CODE, "maxLength": 64}),
                "label" => json!({"pattern": LABEL, "maxLength": 100}),
                "name" if name == "CreateApiTokenRequest" => {
                    json!({"pattern": LABEL, "maxLength": 100})
                }
                "name" if name.contains("Client") => {
                    json!({"pattern": LABEL, "minLength": 1, "maxLength": 200})
                }
                "client_id" if name.contains("Client") => {
                    json!({"pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"})
                }
                "redirect_uris" => json!({
                    "minItems": 1, "maxItems": 20,
                    "items": {"type": "string", "pattern": CLIENT_URI, "maxLength": 2000}
                }),
                "post_logout_redirect_uris" => json!({
                    "maxItems": 20,
                    "items": {"type": "string", "pattern": CLIENT_URI, "maxLength": 2000}
                }),
                "backchannel_logout_uri" => json!({"pattern": CLIENT_URI, "maxLength": 2000}),
                "access_token_ttl" => json!({"minimum": 60, "maximum": 86_400}),
                "type" if name.contains("Client") => {
                    json!({"enum": ["confidential", "public", null]})
                }
                "password" | "new_password" | "current_password" => {
                    json!({"minLength": 1, "maxLength": 1024})
                }
                _ => continue,
            };
            if let (Some(property), Some(extra)) = (property.as_object_mut(), extra.as_object()) {
                for (k, v) in extra {
                    property.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Whether a path is open to anyone: the login steps and this document.
fn anonymous(path: &str) -> bool {
    path.contains("/login") || path.ends_with("/setup-link") || path == "/api/v1/openapi.json"
}

/// The two ways to be someone: a bearer token (a session's, or an API token's on the admin
/// operations) and the session cookie; every operation but the anonymous ones needs one.
fn add_security(doc: &mut Value) {
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert(
            "securitySchemes".into(),
            json!({
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token (from a login's `authenticated` answer), or on \
                                    the administration operations an API token"
                },
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "__Host-latchkey_session",
                    "description": "The session cookie a login sets (`latchkey_session` when the \
                                    public URL is plain HTTP on loopback); writes must come from \
                                    the public URL's origin"
                }
            }),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if anonymous(path) {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            if let Some(op) = op.as_object_mut() {
                op.insert("security".into(), json!([{"bearer": []}, {"cookie": []}]));
            }
        }
    }
}

/// One link: from an answer of `(path, method, status)` to the operation `target`, with its
/// parameters and body taken from the answer or the request.
struct Link {
    from: (&'static str, &'static str, &'static str),
    name: &'static str,
    target: &'static str,
    parameters: Value,
    body: Option<Value>,
}

/// How one answer feeds the next request: what an id, a token or a slug in an answer is for.
#[allow(clippy::too_many_lines)] // one table
fn links() -> Vec<Link> {
    let env_of_request = "$request.path.env";
    let created_user = ("/api/v1/environments/{env}/users", "post", "201");
    let mut links = Vec::new();
    for (name, target) in [
        ("GetUser", "get_user"),
        ("UpdateUser", "update_user"),
        ("DeleteUser", "delete_user"),
        ("ResetPassword", "reset_password"),
        ("ResetMfa", "reset_mfa"),
        ("SignOut", "sign_out"),
        ("ClearLockout", "clear_lockout"),
    ] {
        links.push(Link {
            from: created_user,
            name,
            target,
            parameters: json!({"env": env_of_request, "id": "$response.body#/user/id"}),
            body: None,
        });
    }
    links.push(Link {
        from: created_user,
        name: "UseSetupLink",
        target: "setup_link",
        parameters: json!({"env": env_of_request}),
        body: Some(json!({"token": "$response.body#/setup_token"})),
    });
    for (name, target) in [
        ("GetEnvironment", "get_environment"),
        ("UpdateEnvironment", "update_environment"),
        ("Stats", "stats"),
        ("ListUsers", "list_users"),
        ("CreateUser", "create_user"),
    ] {
        links.push(Link {
            from: ("/api/v1/environments", "post", "201"),
            name,
            target,
            parameters: json!({"env": "$response.body#/slug"}),
            body: None,
        });
    }
    for (name, target) in [
        ("GetClient", "get_client"),
        ("UpdateClient", "update_client"),
        ("DeleteClient", "delete_client"),
        ("RotateSecret", "rotate_secret"),
    ] {
        links.push(Link {
            from: ("/api/v1/environments/{env}/clients", "post", "201"),
            name,
            target,
            parameters: json!({
                "env": env_of_request,
                "client_id": "$response.body#/client/client_id"
            }),
            body: None,
        });
    }
    links.push(Link {
        from: ("/api/v1/environments/{env}/api-tokens", "post", "201"),
        name: "RevokeToken",
        target: "revoke_token",
        parameters: json!({"env": env_of_request, "id": "$response.body#/api_token/id"}),
        body: None,
    });
    links.push(Link {
        from: (
            "/api/v1/environments/{env}/users/{id}/reset-password",
            "post",
            "200",
        ),
        name: "UseSetupLink",
        target: "setup_link",
        parameters: json!({"env": env_of_request}),
        body: Some(json!({"token": "$response.body#/setup_token"})),
    });
    // A setup link starts a login at its first step, choosing a password. (The steps after a
    // password depend on the account, so no link can say which comes next.)
    links.push(Link {
        from: ("/api/v1/environments/{env}/setup-link", "post", "200"),
        name: "NewPassword",
        target: "new_password",
        parameters: json!({"env": env_of_request}),
        body: Some(json!({"login_token": "$response.body#/login_token"})),
    });
    links.push(Link {
        from: ("/api/v1/me/mfa/totp", "post", "200"),
        name: "ConfirmEnrolment",
        target: "confirm_enrolment",
        parameters: json!({"enrollment_id": "$response.body#/enrollment_id"}),
        body: None,
    });
    links
}

/// Write [`links`] into the answers they start from.
fn add_links(doc: &mut Value) {
    for link in links() {
        let (path, method, status) = link.from;
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('~', "~0").replace('/', "~1")
        );
        let Some(answer) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
            continue;
        };
        let mut value = json!({"operationId": link.target, "parameters": link.parameters});
        if let (Some(body), Some(v)) = (link.body, value.as_object_mut()) {
            v.insert("requestBody".into(), body);
        }
        if let Some(links) = answer
            .entry("links")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            links.insert(link.name.to_owned(), value);
        }
    }
}

/// Add the problem answers that the layers around every handler give: 503 everywhere (the
/// database or the hashing pool), 400 for malformed input, 404 where a path names something,
/// 401 and 403 where the caller must be someone, and for a body 408, 413 and 415.
fn complete_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/problem+json": {
                "schema": {"$ref": "#/components/schemas/ProblemSchema"}
            }}
        })
    };
    for (path, item) in paths.iter_mut() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        let login = path.contains("/login") || path.ends_with("/setup-link");
        let anonymous = anonymous(path);
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            add(
                "400",
                "`invalid_request`: malformed input (body, query or path)",
            );
            if path.contains('{') {
                add("404", "`not_found`: no such environment or item");
            }
            if !anonymous {
                add("401", "`unauthenticated`: no valid session or token");
                add(
                    "403",
                    "`forbidden`: not allowed to the caller, or a cookie-authenticated write \
                     from another origin",
                );
            }
            if has_body {
                add("408", "`request_timeout`: the body did not arrive in time");
                add("413", "`payload_too_large`: a body over 64 KiB");
                add("415", "`unsupported_media_type`: a body that is not JSON");
            }
            if path.contains("/login/") {
                add(
                    "409",
                    "`invalid_step`: the login is at another step (its `status` says which)",
                );
            }
            if login || path.starts_with("/api/v1/me/") {
                add(
                    "429",
                    "`too_many_attempts`: locked or throttled, with `Retry-After`",
                );
            }
            add(
                "503",
                "`unavailable` (the database) or `busy` (the hashing pool), with `Retry-After`",
            );
            constrain_parameters(op);
        }
    }
}

/// What the server accepts for the parameters every listing and path shares, by name.
fn constrain_parameters(op: &mut Value) {
    let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
        return;
    };
    for param in params {
        let name = param
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        let constraint = match name.as_str() {
            "env" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}),
            "mfa" => json!({"type": "string", "enum": ["enrolled", "not_enrolled"]}),
            "role" => json!({"type": "string", "enum": ["user", "admin"]}),
            "state" => json!({"type": "string", "enum": ["invited", "active", "disabled"]}),
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "since" | "until" => json!({"type": "string", "format": "date-time"}),
            "type" => json!({
                "type": "string",
                "enum": latchkey_service::AuditType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
            }),
            _ => continue,
        };
        if let Some(p) = param.as_object_mut() {
            p.insert("schema".into(), constraint);
        }
    }
}
