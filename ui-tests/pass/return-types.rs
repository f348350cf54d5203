//! Return types: `impl IntoResponse`, `Result<_, E>` with `?` and early `return`,
//! tuples with status and headers, and `Response`.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use throttle::throttle;

struct AppError;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

fn load(id: u32) -> Result<u32, AppError> {
    if id == 0 { Err(AppError) } else { Ok(id) }
}

#[throttle(uid = "ui:returns-impl", rate = "1/s")]
async fn opaque() -> impl IntoResponse {
    (StatusCode::CREATED, "made")
}

#[throttle(uid = "ui:returns-impl-headers", rate = "1/s", headers = "always")]
async fn opaque_with_headers() -> impl IntoResponse {
    Json(vec![1, 2, 3])
}

#[throttle(uid = "ui:returns-result", rate = "1/s", headers = "throttled")]
async fn fallible() -> Result<Json<u32>, AppError> {
    let id = load(7)?;
    if id > 100 {
        return Err(AppError);
    }
    Ok(Json(id))
}

#[throttle(uid = "ui:returns-response", rate = "1/s")]
async fn response() -> Response {
    if load(1).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([("x-custom", "1")], "body").into_response()
}

#[throttle(uid = "ui:returns-nested", rate = "1/s")]
async fn nested() -> Result<(StatusCode, impl IntoResponse), AppError> {
    Ok((StatusCode::OK, "nested"))
}

fn main() {
    let _app: Router = Router::new()
        .route("/opaque", get(opaque))
        .route("/opaque-headers", get(opaque_with_headers))
        .route("/fallible", get(fallible))
        .route("/response", get(response))
        .route("/nested", get(nested));
}
