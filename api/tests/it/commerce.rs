//! Quote to cash through the API: server-side totals, line changes and their limits, subscriptions'
//! cancellation bookkeeping, invoices, and ticket threads.

use serde_json::json;

use crate::helpers::{TestApp, admin_token, send, spawn_app};

async fn first_id(app: &TestApp, table: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT x.id::text FROM {table} x JOIN tenants t ON t.id = x.tenant_id WHERE t.slug = $1 ORDER BY x.id LIMIT 1"
    )))
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("id")
}

#[tokio::test]
async fn quotes_total_themselves_and_lock_when_sent() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let (opp, product) = (first_id(&app, "opportunities").await, first_id(&app, "products").await);
    let body = json!({"opportunity_id": opp, "tax_pct": "8.25", "items": [
        {"product_id": product, "quantity": "3", "unit_price": "19.99", "discount_pct": "10"},
        {"product_id": product, "quantity": "1.5", "unit_price": "100"}]});
    let (status, q) = send(app.http.post(format!("{}/v1/quotes", app.base)).json(&body), &t).await;
    assert_eq!(status, 201, "{q}");
    assert_eq!(
        (&q["subtotal"], &q["discount_total"], &q["tax_total"], &q["total"]),
        (&json!("209.97"), &json!("6.00"), &json!("16.83"), &json!("220.80"))
    );
    assert!(q["number"].as_str().unwrap_or_default().starts_with("Q-"), "{q}");
    let id = q["id"].as_str().unwrap_or_default();
    let items = format!("{}/v1/quotes/{id}/items", app.base);
    let (_, lines) = send(app.http.get(&items), &t).await;
    assert_eq!(lines.as_array().map(Vec::len), Some(2));
    assert_eq!(lines[0]["line_total"], "53.97");
    // Clients cannot send totals.
    let (status, _) =
        send(app.http.post(format!("{}/v1/quotes", app.base)).json(&json!({"opportunity_id": opp, "total": "1"})), &t)
            .await;
    assert_eq!(status, 422);
    // Adding a line recomputes; removing it restores.
    let (status, added) =
        send(app.http.post(&items).json(&json!({"product_id": product, "quantity": "1", "unit_price": "10"})), &t)
            .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["quote"]["subtotal"], "219.97");
    let item_id = added["item"]["id"].as_str().unwrap_or_default();
    let (status, back) = send(app.http.delete(format!("{items}/{item_id}")), &t).await;
    assert_eq!((status, &back["total"]), (200, &json!("220.80")));
    // A new tax rate recomputes too.
    let (_, retaxed) =
        send(app.http.patch(format!("{}/v1/quotes/{id}", app.base)).json(&json!({"tax_pct": "0"})), &t).await;
    assert_eq!(retaxed["total"], "203.97");
    // Once sent, lines are frozen.
    send(app.http.patch(format!("{}/v1/quotes/{id}", app.base)).json(&json!({"status": "sent"})), &t).await;
    let (status, problem) =
        send(app.http.post(&items).json(&json!({"product_id": product, "quantity": "1", "unit_price": "1"})), &t).await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) =
        send(app.http.post(&items).json(&json!({"product_id": product, "quantity": "0", "unit_price": "1"})), &t).await;
    assert_eq!(status, 409, "state is checked first");
}

#[tokio::test]
async fn subscriptions_invoices_and_ticket_threads() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let account = first_id(&app, "accounts").await;
    let (status, sub) = send(
        app.http.post(format!("{}/v1/subscriptions", app.base)).json(&json!({
            "account_id": account, "plan_name": "Team", "mrr": "250.00", "currency": "EUR",
            "started_at": "2026-01-01T00:00:00Z", "current_period_end": "2026-02-01T00:00:00Z"})),
        &t,
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let url = format!("{}/v1/subscriptions/{}", app.base, sub["id"].as_str().unwrap_or_default());
    let (_, cancelled) =
        send(app.http.patch(&url).json(&json!({"status": "cancelled", "cancel_reason": "budget"})), &t).await;
    assert!(cancelled["cancelled_at"].is_string(), "{cancelled}");
    let (_, revived) = send(app.http.patch(&url).json(&json!({"status": "active"})), &t).await;
    assert!(revived["cancelled_at"].is_null(), "{revived}");

    let (status, inv) = send(
        app.http.post(format!("{}/v1/invoices", app.base)).json(&json!({
            "account_id": account, "currency": "EUR", "tax_pct": "19", "issued_on": "2026-03-01",
            "items": [{"description": "Seats", "quantity": "10", "unit_price": "25.00"},
                      {"description": "Onboarding", "quantity": "1", "unit_price": "499.99"}]})),
        &t,
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    assert_eq!(
        (&inv["subtotal"], &inv["tax_total"], &inv["total"], &inv["due_on"]),
        (&json!("749.99"), &json!("142.50"), &json!("892.49"), &json!("2026-03-31"))
    );
    assert!(inv["number"].as_str().unwrap_or_default().starts_with("INV-"));
    let (_, lines) =
        send(app.http.get(format!("{}/v1/invoices/{}/items", app.base, inv["id"].as_str().unwrap_or_default())), &t)
            .await;
    assert_eq!(lines.as_array().map(Vec::len), Some(2));
    let (status, _) = send(
        app.http
            .post(format!("{}/v1/invoices", app.base))
            .json(&json!({"account_id": account, "currency": "EUR", "items": []})),
        &t,
    )
    .await;
    assert_eq!(status, 422, "an invoice needs lines");

    let (status, ticket) =
        send(app.http.post(format!("{}/v1/tickets", app.base)).json(&json!({"subject": "Export fails"})), &t).await;
    assert_eq!(status, 201, "{ticket}");
    assert!(ticket["number"].as_str().unwrap_or_default().starts_with("TCK-"));
    let thread = format!("{}/v1/tickets/{}/messages", app.base, ticket["id"].as_str().unwrap_or_default());
    let (status, msg) = send(app.http.post(&thread).json(&json!({"body": "Looking into it"})), &t).await;
    assert_eq!(status, 201, "{msg}");
    let (_, messages) = send(app.http.get(&thread), &t).await;
    assert_eq!(messages[0]["body"], "Looking into it");
    let (_, reread) =
        send(app.http.get(format!("{}/v1/tickets/{}", app.base, ticket["id"].as_str().unwrap_or_default())), &t).await;
    assert!(reread["first_responded_at"].is_string(), "the first reply is the first response");
    assert_eq!(reread["status"], "open");
}
