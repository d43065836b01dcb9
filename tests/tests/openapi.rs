//! The OpenAPI document and its docs page, from a running gateway.

use std::collections::BTreeSet;

use pipeline_tests::{seed_example, Options, TestEnv};
use serde_json::Value;

/// Every `.route("path", method(handler)...)` of the gateway's router, read from its source:
/// (path, method), so that a route added without an annotation fails here.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway/src/http");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("gateway/src/http") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        for route in source.split(".route(").skip(1) {
            let Some(literal) = route.trim_start().strip_prefix('"') else {
                continue;
            };
            let (route_path, rest) = literal.split_once('"').expect("a closed literal");
            let handlers = rest.split(")\n        )").next().unwrap_or(rest);
            for method in ["get", "post", "put", "patch", "delete"] {
                if handlers.contains(&format!("{method}("))
                    || handlers.contains(&format!(".{method}("))
                {
                    routes.insert((route_path.to_owned(), method.to_owned()));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_gateway_serves_an_openapi_3_1_document_of_every_route() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let response = env
        .http
        .get(format!("{}/openapi.json", env.base_url))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let routes = routes_in_source();
    assert!(routes.len() >= 10, "{routes:?}");
    for (path, method) in &routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{} {path} is routed but not in the document",
            method.to_uppercase()
        );
    }
    for path in ["/metrics", "/openapi.json", "/docs"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }

    let create = &doc["paths"]["/api/v1/integrations/{integration_id}/phone_calls"]["post"];
    let qolio = &create["requestBody"]["content"]["application/json"]["examples"]["qolio"];
    assert_eq!(qolio["value"], seed_example());
    // The limits are this deployment's.
    assert_eq!(
        doc["components"]["schemas"]["PhoneCall"]["properties"]["transcription"]["maxItems"],
        env.settings.limits.max_phrases
    );
}

#[tokio::test]
async fn the_docs_page_is_served_with_its_assets_from_the_gateway() {
    let env = TestEnv::start_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let get = |path: &str| env.http.get(format!("{}{path}", env.base_url)).send();
    let page = get("/docs/").await.expect("GET /docs/");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("HTML");
    assert!(html.contains("swagger-ui"), "{html}");
    // The page loads its script and styles from the gateway, not a CDN.
    assert!(!html.contains("https://"), "{html}");
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/swagger-initializer.js",
    ] {
        let response = get(asset).await.expect(asset);
        assert_eq!(response.status(), 200, "{asset}");
        let body = response.text().await.expect("asset");
        assert!(!body.is_empty(), "{asset}");
        if asset.ends_with("initializer.js") {
            assert!(body.contains("/openapi.json"), "{body}");
        }
    }
}
