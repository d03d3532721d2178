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
        (name = "recommendations", description = "Next-best actions for reps"))
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
