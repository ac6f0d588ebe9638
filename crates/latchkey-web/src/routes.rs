//! Operational routes (SPEC §5.4: `GET /healthz`, `GET /readyz`; `/metrics` is in
//! `metrics.rs`) and the answers for paths and methods nobody serves (a 404 page under `/e/`,
//! a 404 or 405 problem elsewhere).

use axum::{
    Json,
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
};
use latchkey_service::Store;
use serde_json::json;

use crate::{problem::Problem, state::AppState};

/// `GET /healthz`: the process is up. Touches nothing else.
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers. 503 otherwise, so a load balancer takes the node out.
pub(crate) async fn readyz<S: Store>(
    State(st): State<AppState<S>>,
) -> Result<impl IntoResponse, Problem> {
    st.service.ready().await?;
    Ok((StatusCode::OK, Json(json!({"status": "ready"}))))
}

/// Any other path: a 404 page under the pages' `/e/`, a 404 problem everywhere else.
pub(crate) async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/e/") {
        return crate::pages::view::error_page(
            StatusCode::NOT_FOUND,
            crate::pages::view::Notice::NotFound,
            None,
        );
    }
    Problem::not_found().into_response()
}

/// A known path with another method: a 405 problem.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
