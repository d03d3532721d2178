//! The OpenAPI 3.1 document, generated from the handlers' annotations (served at `/openapi.json`,
//! browsable at `/docs`).

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Orbas CRM API", description = "The operational CRM: REST over Postgres, tenant-isolated, audited."),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Login, tokens, sessions"), (name = "accounts", description = "Companies"), (name = "contacts", description = "People"),
        (name = "leads", description = "Prospects"), (name = "opportunities", description = "Deals and their stages"), (name = "tasks", description = "Activities: calls, emails, meetings, to-dos"),
        (name = "tickets", description = "Support cases and their threads"),
        (name = "pipeline stages", description = "Stages of the sales pipelines"), (name = "products", description = "The product catalogue"),
        (name = "quotes", description = "Quotes and their lines; totals computed by the server"),
        (name = "subscriptions", description = "Recurring revenue"), (name = "invoices", description = "Invoices and their lines"),
        (name = "campaigns", description = "Marketing campaigns"), (name = "knowledge articles", description = "The knowledge base"),
        (name = "employees", description = "The HR view of the tenant's people"),
        (name = "users", description = "The user directory, invitations, API keys"),
        (name = "recommendations", description = "Next-best actions for reps"),
        (name = "search", description = "Full-text, semantic and hybrid search over the records the caller may read"),
        (name = "operations", description = "The system's health: database, change stream, lake, search, models, deliveries"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Error bodies are `application/problem+json` (RFC 9457); the path annotations say `body = Problem`,
/// which utoipa documents as `application/json`. This moves every Problem body to the right media type;
/// apply it to the finished document (after the routers' paths are merged in).
#[derive(Debug)]
pub struct ProblemJson;

impl Modify for ProblemJson {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                for resp in op.responses.responses.values_mut() {
                    let RefOr::T(resp) = resp else { continue };
                    let is_problem = resp.content.get("application/json").is_some_and(|c| {
                        matches!(c, RefOr::T(c) if matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")))
                    });
                    if is_problem && let Some(content) = resp.content.shift_remove("application/json") {
                        resp.content.insert("application/problem+json".to_owned(), content);
                    }
                }
            }
        }
    }
}
