//! Generic handlers with bounds in both places, and a where clause, keep them.

use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use throttle::throttle;

#[derive(Serialize, serde::Deserialize)]
struct Item {
    name: String,
}

#[throttle(uid = "ui:generic-echo", rate = "10/s", headers = "always")]
async fn echo<T: Serialize + Send + 'static>(Json(value): Json<T>) -> Json<T>
where
    T: DeserializeOwned,
{
    Json(value)
}

#[throttle(uid = "ui:generic-count", rate = "10/s")]
async fn count<T>(Json(values): Json<Vec<T>>) -> String
where
    T: DeserializeOwned + Send + 'static,
{
    values.len().to_string()
}

fn main() {
    let _app: Router = Router::new().route("/echo", post(echo::<Item>)).route("/count", post(count::<Item>));
}
