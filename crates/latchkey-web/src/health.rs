//! The operational routes (SPEC §5.4): `GET /healthz` and `GET /readyz`; `/metrics` is in
//! `metrics.rs`.

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
