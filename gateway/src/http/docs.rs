//! `GET /docs`: the OpenAPI document rendered by Swagger UI, whose assets are compiled into the
//! gateway (utoipa-swagger-ui's `vendored` feature), so the page needs no CDN and no internet.

use axum::Router;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub const PATH: &str = "/docs";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(PATH)
        .config(Config::from(super::openapi::PATH))
        .into()
}
