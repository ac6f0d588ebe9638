//! The answers for paths and methods nobody serves: a 404 page under the pages' `/e/`, a 404
//! or 405 problem everywhere else.

use axum::{
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
};

use crate::{
    pages::frame::{Notice, error_page},
    problem::Problem,
};

/// Any other path.
pub(crate) async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/e/") {
        return error_page(StatusCode::NOT_FOUND, Notice::NotFound, None);
    }
    Problem::not_found().into_response()
}

/// A known path with another method.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed here",
    )
}
