//! Operational routes (SPEC §5.4). Later issues add the API and the pages beside them.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
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

/// Any other path: a 404 problem, never an HTML error page.
pub(crate) async fn fallback() -> Problem {
    Problem::not_found()
}

/// A known path with another method: a 405 problem.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
