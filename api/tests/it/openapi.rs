//! The OpenAPI document describes what the server serves, and the interactive UI is there.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn openapi_document_lists_the_endpoints_schemas_and_auth() {
    let app = spawn_app().await;
    let resp = app.http.get(format!("{}/openapi.json", app.base)).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.expect("json");
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, method) in [
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/me", "get"),
        ("/v1/accounts", "get"),
        ("/v1/accounts", "post"),
        ("/v1/accounts/{id}", "patch"),
        ("/v1/accounts/{id}", "delete"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    for schema in ["Account", "NewAccount", "AccountPatch", "Problem", "TokenResponse"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Unknown fields are refused by the server, and the schema says so.
    assert_eq!(doc["components"]["schemas"]["NewAccount"]["additionalProperties"], false);

    let ui = app.http.get(format!("{}/docs/", app.base)).send().await.expect("docs");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap_or_default().contains("swagger"), "Swagger UI page");
}
