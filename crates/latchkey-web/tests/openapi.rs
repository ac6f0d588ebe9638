//! The OpenAPI 3.1 document matches the server: every route is in it, nothing else is, and
//! every documented operation reaches a handler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, sync::Arc};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use latchkey_core::{
    password::HashCost,
    sealing::{Keyring, SealingKey},
};
use latchkey_service::{Service, ServiceConfig, TestClock};
use latchkey_store::SqliteStore;
use latchkey_web::{WebConfig, api, router};
use tower::ServiceExt;

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("t.db"))
        .await
        .unwrap();
    let mut config = ServiceConfig::new("http://127.0.0.1:8080");
    config.hash_cost = HashCost::insecure_for_tests();
    let service = Service::start(
        store,
        Arc::new(TestClock::at(1_800_000_000)),
        Keyring::new(SealingKey::generate().unwrap()),
        config,
    )
    .await
    .unwrap();
    (
        router(
            service,
            WebConfig::for_public_url("http://127.0.0.1:8080", Vec::new()),
        ),
        dir,
    )
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = api::document();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_server() {
    let served: BTreeSet<(String, String)> = api::routes::<SqliteStore>()
        .into_iter()
        .flat_map(|(path, methods, _)| {
            methods
                .iter()
                .map(move |m| ((*m).to_owned(), path.to_owned()))
        })
        .collect();
    assert_eq!(documented(), served);
    let doc = api::document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Latchkey API");
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let (app, _dir) = app().await;
    for (method, path) in documented() {
        let uri = path
            .replace("{env}", "prod")
            .replace("{id}", "some-id")
            .replace("{enrollment_id}", "some-id");
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(
            !body.contains("no such resource"),
            "{method} {uri} fell through to the fallback: {body}"
        );
        // Without credentials or a body, a handler answers 2xx or a 4xx problem, never 5xx.
        assert!(
            status.is_client_error() || status.is_success(),
            "{method} {uri}: {status} {body}"
        );
    }
    let response = app
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Every operation names the answers the layers around its handler give (malformed input,
/// the database, a missing path item, authentication, a body's size, type and timing), and
/// the parameters and bodies carry the constraints the server enforces, so a generated client
/// or a fuzzer expects what the server says.
#[test]
fn every_operation_documents_its_shared_answers_and_constraints() {
    let doc = api::document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/api/v1/openapi.json" {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            let at = format!("{method} {path}");
            assert!(has("400") && has("503"), "{at}: {:?}", responses.keys());
            if path.contains('{') {
                assert!(has("404"), "{at}");
            }
            if op.get("requestBody").is_some() {
                assert!(has("408") && has("413") && has("415"), "{at}");
            }
            let login = path.contains("/login") || path.ends_with("/setup-link");
            if login {
                assert!(has("429"), "{at}");
            } else {
                assert!(has("401") && has("403"), "{at}");
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "env" {
                    assert_eq!(p["schema"]["pattern"], "^[a-z0-9][a-z0-9-]{0,62}$", "{at}");
                }
                if p["name"] == "limit" {
                    assert_eq!(
                        (
                            p["schema"]["minimum"].as_i64(),
                            p["schema"]["maximum"].as_i64()
                        ),
                        (Some(1), Some(500)),
                        "{at}"
                    );
                }
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["MfaRequest"]["oneOf"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        schemas["EnvironmentPatchRequest"]["properties"]["lockout_threshold"]["minimum"],
        1
    );
    assert!(
        schemas["CreateEnvironmentRequest"]["properties"]["slug"]["pattern"]
            .as_str()
            .is_some()
    );
}
