//! Every kind of extractor keeps working behind the injected guard: State, Path,
//! Query, headers, and a body extractor last (Json, or the whole Request).

use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use throttle::throttle;

#[derive(Clone)]
struct AppState {
    prefix: String,
}

#[derive(Deserialize)]
struct Page {
    page: u32,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

#[throttle(uid = "ui:extractors-parts", rate = "10/s", headers = "always")]
async fn parts(
    State(state): State<AppState>,
    Path((user, item)): Path<(String, u32)>,
    Query(Page { page }): Query<Page>,
    headers: HeaderMap,
) -> String {
    format!("{}{user}/{item}?{page} {}", state.prefix, headers.len())
}

#[throttle(uid = "ui:extractors-json", rate = "10/s")]
async fn create(State(_state): State<AppState>, Json(item): Json<NewItem>) -> Json<String> {
    Json(item.name)
}

#[throttle(uid = "ui:extractors-request", rate = "10/s")]
async fn raw(request: Request) -> String {
    request.uri().to_string()
}

fn main() {
    let _app: Router = Router::new()
        .route("/users/{user}/items/{item}", get(parts))
        .route("/items", post(create))
        .route("/raw", get(raw))
        .with_state(AppState { prefix: "/".to_string() });
}
