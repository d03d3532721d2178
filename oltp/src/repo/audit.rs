//! The audit trail: one append-only row per write, in the same transaction as the write.

use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::model::{TenantId, UserId};

/// Who did it, from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user: Option<UserId>,
    pub api_key: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// `{"field": {"before": …, "after": …}}` for every top-level field that differs (a created record
/// has `before: null`, a deleted one `after: null`). Timestamps the database maintains are left out.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Map::new();
    for key in b.keys().chain(a.keys().filter(|k| !b.contains_key(*k))) {
        if key == "updated_at" || key == "created_at" {
            continue;
        }
        let (old, new) = (b.get(key).unwrap_or(&Value::Null), a.get(key).unwrap_or(&Value::Null));
        if old != new {
            out.insert(key.clone(), serde_json::json!({ "before": old, "after": new }));
        }
    }
    Value::Object(out)
}

pub async fn record(
    conn: &mut PgConnection,
    tenant: TenantId,
    actor: &Actor,
    action: &str,
    resource: &str,
    resource_id: Uuid,
    changes: &Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_logs (tenant_id, id, actor_user_id, actor_api_key_id, action, resource, resource_id, changes, \
         request_id, ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::inet)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(actor.user)
    .bind(actor.api_key)
    .bind(action)
    .bind(resource)
    .bind(resource_id)
    .bind(changes)
    .bind(&actor.request_id)
    .bind(actor.ip.map(|i| i.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_fields_only() {
        let before = json!({"name": "A", "domain": "a.com", "updated_at": "x"});
        let after = json!({"name": "B", "domain": "a.com", "updated_at": "y", "industry": "software"});
        let d = diff(Some(&before), Some(&after));
        assert_eq!(
            d,
            json!({"name": {"before": "A", "after": "B"}, "industry": {"before": null, "after": "software"}})
        );
        assert_eq!(diff(None, Some(&json!({"name": "A"}))), json!({"name": {"before": null, "after": "A"}}));
    }
}
