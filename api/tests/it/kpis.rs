//! The KPI layer and dashboards over a real lake: seeded CRM → CDC → broker → sink (silver and gold) →
//! `/v1/kpis` and `/v1/dashboards`. KPI values are checked against the same figures computed by
//! Postgres; definitions are checked against the lake, reviewed (draft → approved by an admin) and
//! round-trip through YAML; a dashboard's results are cached until the lake commits a change.

use std::collections::BTreeMap;
use std::time::Duration;

use orbas_oltp::model::TenantId;
use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, LakeApp, TestApp, admin_token, flow, lake_app_with_dashboards, landed, send};

async fn token_of_role(app: &TestApp, role: &str) -> (String, String) {
    let (id, email): (String, String) = sqlx::query_as(
        "SELECT u.id::text, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id
         WHERE t.slug = $1 AND r.key = $2 AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .bind(role)
    .fetch_one(&app.db.admin)
    .await
    .expect("a user of the role");
    let body: Value = app.login(&email, DEMO_PASSWORD).await.json().await.expect("login json");
    (id, body["access_token"].as_str().expect("access token").to_owned())
}

fn post(app: &TestApp, path: &str, body: Value) -> reqwest::RequestBuilder {
    app.http.post(format!("{}{path}", app.base)).json(&body)
}

fn get(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.http.get(format!("{}{path}", app.base))
}

/// `[[key..., value]]` rows of a KPI result as `key → value` (keys joined by `|`, null as `-`).
fn by_key(result: &Value) -> BTreeMap<String, f64> {
    let rows = result["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let cells = r.as_array().cloned().unwrap_or_default();
            let (value, keys) = cells.split_last().expect("a value column");
            let key = keys.iter().map(|k| k.as_str().map_or("-".to_owned(), str::to_owned)).collect::<Vec<_>>();
            (key.join("|"), value.as_f64().unwrap_or(f64::NAN))
        })
        .collect()
}

async fn won_deals(app: &TestApp, tenant: TenantId) -> f64 {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE tenant_id = $1 AND status = 'won'")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("won");
    n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_and_dashboards_answer_from_the_lake_and_follow_its_commits() {
    let LakeApp { app, tenant, root, db, dir: _dir } = lake_app_with_dashboards().await;
    // Installed once: the standard set and a dashboard per role; installing again adds nothing.
    let kpi_count: i64 = sqlx::query_scalar("SELECT count(*) FROM kpi_definitions WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("kpis");
    let board_count: i64 = sqlx::query_scalar("SELECT count(*) FROM dashboards WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("dashboards");
    assert_eq!((kpi_count, board_count), (16, 4));
    let mut tx = db.begin(tenant).await.expect("tx");
    assert_eq!(
        orbas_dashboards::store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await.ok(),
        Some(Default::default())
    );
    tx.commit().await.expect("commit");

    let f = flow(&app, &root).await;
    for t in ["opportunities", "accounts", "kpi_definitions"] {
        landed(&app, &f.lake, tenant, t).await;
    }
    let admin = admin_token(&app).await;
    let (analyst_id, analyst) = token_of_role(&app, "analyst").await;
    let (_, rep) = token_of_role(&app, "sales_rep").await;

    // The standard set, approved, readable by a rep.
    let (code, list) = send(get(&app, "/v1/kpis"), &rep).await;
    assert_eq!(code, 200, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 16);
    assert!(list.iter().all(|k| k["status"] == "approved" && k["is_standard"] == true), "{list:?}");

    // Numbers: deals won and win rate per rep, as Postgres counts them (once gold has caught up).
    let want = won_deals(&app, tenant).await;
    let total = json!({"grain": "total"});
    orbas_testkit::eventually("gold deals_won matches Postgres", Duration::from_secs(120), || {
        let req = post(&app, "/v1/kpis/deals_won/query", total.clone());
        let admin = admin.clone();
        async move {
            let (code, body) = send(req, &admin).await;
            code == 200 && by_key(&body).get("") == Some(&want)
        }
    })
    .await;
    let (_, last) = send(post(&app, "/v1/kpis/deals_won/query", total.clone()), &admin).await;
    assert_eq!(last["columns"], json!(["value"]), "{last}");
    let oracle: Vec<(Option<String>, f64)> = sqlx::query_as(
        "SELECT owner_id::text, sum((status = 'won')::int)::float8 / count(*) FROM opportunities
          WHERE tenant_id = $1 AND status IN ('won', 'lost') GROUP BY owner_id",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("oracle");
    let (code, body) =
        send(post(&app, "/v1/kpis/win_rate/query", json!({"grain": "total", "group_by": ["owner"]})), &analyst).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["columns"], json!(["owner", "value"]));
    let got = by_key(&body);
    assert_eq!(got.len(), oracle.len(), "{body}");
    for (owner, rate) in &oracle {
        let v = got[&owner.clone().unwrap_or_else(|| "-".into())];
        assert!((v - rate).abs() < 1e-9, "owner {owner:?}: {v} vs {rate}");
    }
    // Drill-down: the records behind a value — all won deals behind deals won, one rep's closed deals
    // behind their win rate.
    let (code, drilled) = send(post(&app, "/v1/kpis/deals_won/drill", json!({"limit": 1000})), &rep).await;
    assert_eq!(code, 200, "{drilled}");
    let column = |t: &Value, name: &str| t["columns"].as_array().and_then(|c| c.iter().position(|c| c == name));
    let id_at = column(&drilled, "opportunity_id").expect("records carry their id");
    let mut ids: Vec<String> = drilled["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[id_at].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    let won_ids: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM opportunities WHERE tenant_id = $1 AND status = 'won' ORDER BY id::text",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("won ids");
    assert_eq!(ids, won_ids);
    let (owner, _) = oracle.iter().find(|(o, _)| o.is_some()).cloned().expect("an owner");
    let (code, drilled) =
        send(post(&app, "/v1/kpis/win_rate/drill", json!({"values": {"owner": owner}, "limit": 1000})), &rep).await;
    assert_eq!(code, 200, "{drilled}");
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opportunities WHERE tenant_id = $1 AND owner_id::text = $2 AND status IN ('won', 'lost')",
    )
    .bind(tenant)
    .bind(&owner)
    .fetch_one(&app.db.admin)
    .await
    .expect("closed");
    assert_eq!(drilled["rows"].as_array().map(Vec::len), Some(closed as usize));
    let (code, problem) = send(post(&app, "/v1/kpis/win_rate/drill", json!({"values": {"planet": "x"}})), &rep).await;
    assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!("values.planet")), "{problem}");

    // A filter the KPI has no dimension for is reported, not silently dropped; an unknown breakdown is a field error.
    let (code, body) =
        send(post(&app, "/v1/kpis/deals_won/query", json!({"grain": "total", "filters": {"owner": ["x"]}})), &rep)
            .await;
    assert_eq!((code, body["ignored"].clone()), (200, json!(["owner"])), "{body}");
    let (code, body) = send(post(&app, "/v1/kpis/deals_won/query", json!({"group_by": ["planet"]})), &rep).await;
    assert_eq!((code, body["errors"][0]["field"].clone()), (422, json!("group_by[0]")), "{body}");

    // Definitions are checked against the lake, each problem on its field.
    let draft = json!({"key": "big_deals", "name": "Big deals", "source": "opportunities",
                       "measure": "COUNT(*)", "time": "close_date", "filter": "amount > 10000",
                       "dimensions": [{"name": "owner", "column": "owner_id"}]});
    for (field, patch) in [
        ("source", json!({"source": "no_such_table"})),
        ("measure", json!({"measure": "SUM(amount_typo)"})),
        ("time", json!({"time": "closing_day"})),
        ("dimensions[0].column", json!({"dimensions": [{"name": "owner", "column": "boss"}]})),
        ("filter", json!({"filter": "amount > 'x' AND nope"})),
        ("drill", json!({"drill": "SELECT id AS opportunity_id, close_date FROM opportunities"})),
        ("drill", json!({"drill": "SELECT id AS opportunity_id, close_date, owner_id FROM opportunities"})),
        ("measure", json!({"measure": "COUNT(*); DROP TABLE accounts"})),
    ] {
        let mut body = draft.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (code, problem) = send(post(&app, "/v1/kpis", body), &analyst).await;
        assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!(field)), "{problem}");
    }
    let (code, _) = send(post(&app, "/v1/kpis", draft.clone()), &rep).await;
    assert_eq!(code, 403, "reps do not define KPIs");
    let (code, created) = send(post(&app, "/v1/kpis", draft.clone()), &analyst).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!((created["status"].clone(), created["owner_id"].clone()), (json!("draft"), json!(analyst_id)));
    let (code, _) = send(post(&app, "/v1/kpis", draft.clone()), &analyst).await;
    assert_eq!(code, 409, "keys are unique");
    let (code, body) = send(post(&app, "/v1/kpis/big_deals/query", json!({"grain": "total"})), &analyst).await;
    let big: i64 = sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE tenant_id = $1 AND amount > 10000")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("big deals");
    assert_eq!((code, by_key(&body).get("").copied()), (200, Some(big as f64)), "a draft previews: {body}");

    // Review: only an admin approves; a change of wording keeps the approval, a change of meaning drops it.
    let (code, _) = send(post(&app, "/v1/kpis/big_deals/approve", json!({})), &analyst).await;
    assert_eq!(code, 403);
    let (code, approved) = send(post(&app, "/v1/kpis/big_deals/approve", json!({})), &admin).await;
    assert_eq!((code, approved["status"].clone()), (200, json!("approved")), "{approved}");
    let r = get(&app, "/v1/kpis/big_deals").bearer_auth(&analyst).send().await.expect("get");
    let tag = r.headers()["etag"].to_str().expect("etag").to_owned();
    let mut body = draft.clone();
    body["name"] = json!("Large deals");
    let put = |body: Value, tag: &str| {
        app.http.put(format!("{}/v1/kpis/big_deals", app.base)).header("if-match", tag).json(&body)
    };
    let (code, kept) = send(put(body.clone(), &tag), &analyst).await;
    assert_eq!((code, kept["status"].clone(), kept["name"].clone()), (200, json!("approved"), json!("Large deals")));
    let (code, _) = send(put(body.clone(), &tag), &analyst).await;
    assert_eq!(code, 412, "a stale ETag is refused");
    body["filter"] = json!("amount > 20000");
    let (code, redrafted) = send(put(body, "*"), &analyst).await;
    assert_eq!(
        (code, redrafted["status"].clone(), redrafted["approved_at"].clone()),
        (200, json!("draft"), Value::Null)
    );
    let mut standard = list.iter().find(|k| k["key"] == "bookings").cloned().expect("bookings");
    for k in ["id", "owner_id", "approved_by", "approved_at", "is_standard", "created_at", "updated_at", "status"] {
        standard.as_object_mut().expect("object").remove(k);
    }
    let (code, _) = send(app.http.put(format!("{}/v1/kpis/bookings", app.base)).json(&standard), &analyst).await;
    assert_eq!(code, 403, "the standard set is the admins'");

    // YAML: export, then an import is all or nothing with every problem placed.
    let yaml = get(&app, "/v1/kpis.yaml").bearer_auth(&analyst).send().await.expect("export");
    assert_eq!(yaml.headers()["content-type"], "application/yaml; charset=utf-8");
    let yaml = yaml.text().await.expect("yaml");
    assert!(yaml.starts_with("kpis:") && yaml.contains("key: big_deals") && yaml.contains("key: csat"), "{yaml}");
    let import = |text: String, media: &str| {
        app.http.post(format!("{}/v1/kpis.yaml", app.base)).header("content-type", media).body(text)
    };
    let bad = "kpis:\n- key: lost_deals\n  name: Lost deals\n  source: opportunities\n  measure: COUNT(*)\n  time: close_date\n  filter: status = 'lost'\n- key: broken\n  name: Broken\n  source: opportunities\n  measure: SUM(nothing_here)\n";
    let (code, problem) = send(import(bad.into(), "application/yaml"), &analyst).await;
    assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!("kpis[1].measure")), "{problem}");
    let (code, _) = send(get(&app, "/v1/kpis/lost_deals"), &analyst).await;
    assert_eq!(code, 404, "nothing of a failed import is kept");
    let (code, _) = send(import(bad.into(), "text/plain"), &analyst).await;
    assert_eq!(code, 415);
    let (code, problem) = send(import("kpis: [unclosed".into(), "application/yaml"), &analyst).await;
    assert_eq!(code, 422, "{problem}");
    let good = bad.split("- key: broken").next().expect("first").to_owned();
    let (code, report) = send(import(good.clone(), "application/yaml"), &analyst).await;
    assert_eq!((code, report["created"].clone()), (200, json!(["lost_deals"])), "{report}");
    let (code, report) = send(import(good, "application/yaml"), &analyst).await;
    assert_eq!((code, report["unchanged"].clone()), (200, json!(["lost_deals"])), "{report}");

    // Dashboards: each role's default; a shared dashboard takes approved KPIs only.
    let (code, mine) = send(get(&app, "/v1/me/dashboard"), &analyst).await;
    assert_eq!((code, mine["key"].clone()), (200, json!("revenue_overview")), "{mine}");
    let (code, _) = send(get(&app, "/v1/me/dashboard"), &admin).await;
    assert_eq!(code, 404, "no default for admins");
    let tile = json!({"kpi": "deals_won", "kind": "tile", "title": "Won", "x": 0, "y": 0, "w": 3, "h": 2});
    let board = json!({"name": "Deals", "is_shared": true, "filters": {"range": "all"}, "widgets": [
        {"kpi": "big_deals", "kind": "bar", "title": "Big", "config": {"group_by": ["owner"]}}]});
    let (code, problem) = send(post(&app, "/v1/dashboards", board), &analyst).await;
    assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!("widgets[0].kpi")), "{problem}");
    let board = json!({"name": "Deals", "filters": {"range": "all"}, "widgets": [
        tile,
        {"kpi": "win_rate", "kind": "bar", "title": "Win rate by rep", "x": 3, "w": 9,
         "config": {"group_by": ["owner"], "grain": "total"}},
        {"sql": "SELECT stage_id, count(*) AS n FROM opportunities GROUP BY stage_id ORDER BY n DESC", "kind": "table",
         "title": "By stage", "y": 4, "w": 12}]});
    let (code, problem) = send(post(&app, "/v1/dashboards", board.clone()), &rep).await;
    assert_eq!(code, 403, "reps do not write SQL widgets: {problem}");
    let (code, created) = send(post(&app, "/v1/dashboards", board), &analyst).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (code, _) = send(get(&app, &format!("/v1/dashboards/{id}")), &rep).await;
    assert_eq!(code, 404, "a private dashboard is its owner's");

    let data_path = format!("/v1/dashboards/{id}/data");
    let (code, data) = send(get(&app, &data_path), &analyst).await;
    assert_eq!(code, 200, "{data}");
    let widgets = data["widgets"].as_array().cloned().unwrap_or_default();
    assert_eq!(widgets.len(), 3);
    assert_eq!(widgets[0]["data"]["rows"], json!([[want]]), "{data}");
    assert_eq!(by_key(&widgets[1]["data"]).len(), oracle.len());
    let by_stage: i64 = widgets[2]["data"]["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r[1].as_f64().unwrap_or(0.0) as i64).sum())
        .unwrap_or(0);
    let opportunities: i64 = sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("count");
    assert_eq!(by_stage, opportunities);
    // Once the lake stops moving (the writes above stream into it too), a dashboard comes from the cache.
    orbas_testkit::eventually("a quiet lake serves the dashboard from the cache", Duration::from_secs(120), || {
        let (first, second) = (get(&app, &data_path), get(&app, &data_path));
        let analyst = analyst.clone();
        async move {
            let _ = send(first, &analyst).await;
            let (_, again) = send(second, &analyst).await;
            again["widgets"].as_array().is_some_and(|w| w.iter().all(|w| w["data"]["cached"] == true))
        }
    })
    .await;
    // A viewer's filter: this owner's deals only.
    let owner = oracle.iter().find_map(|(o, _)| o.clone()).expect("an owner");
    let (code, filtered) = send(get(&app, &format!("{data_path}?owner={owner}")), &analyst).await;
    assert_eq!(code, 200);
    assert_eq!(by_key(&filtered["widgets"][1]["data"]).keys().collect::<Vec<_>>(), [&owner]);
    assert_eq!(filtered["widgets"][0]["data"]["ignored"], json!(["owner"]), "deals_won has no owner dimension");

    // A deal won in the CRM reaches the dashboard: the lake's commit drops the cache.
    sqlx::query(
        "UPDATE opportunities SET status = 'won', closed_at = now(), close_date = current_date, forecast_category = 'closed',
           probability = 100, updated_at = now()
         WHERE id = (SELECT id FROM opportunities WHERE tenant_id = $1 AND status = 'open' ORDER BY id LIMIT 1)",
    )
    .bind(tenant)
    .execute(&app.db.admin)
    .await
    .expect("win a deal");
    orbas_testkit::eventually("the won deal on the dashboard", Duration::from_secs(120), || {
        let req = get(&app, &data_path);
        let analyst = analyst.clone();
        async move {
            let (_, body) = send(req, &analyst).await;
            body["widgets"][0]["data"]["rows"] == json!([[want + 1.0]])
        }
    })
    .await;

    // A KPI in use cannot be deleted; an unsaved widget previews (its SQL's error on the widget).
    let (code, _) = app
        .http
        .delete(format!("{}/v1/kpis/deals_won", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("delete");
    assert_eq!(code, 409);
    let (code, preview) = send(
        post(
            &app,
            "/v1/widgets/preview",
            json!({"widget": {"sql": "SELECT count(*) AS n FROM accounts", "kind": "tile", "title": "n"}}),
        ),
        &analyst,
    )
    .await;
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("accounts");
    assert_eq!((code, preview["rows"].clone()), (200, json!([[accounts as f64]])), "{preview}");
    let (code, preview) = send(
        post(
            &app,
            "/v1/widgets/preview",
            json!({"widget": {"sql": "SELECT nope FROM accounts", "kind": "table", "title": "x"}}),
        ),
        &analyst,
    )
    .await;
    assert_eq!(code, 200);
    assert!(preview["error"].as_str().is_some_and(|e| e.contains("nope")), "{preview}");
    let (code, _) = send(
        post(&app, "/v1/widgets/preview", json!({"widget": {"sql": "SELECT 1", "kind": "table", "title": "x"}})),
        &rep,
    )
    .await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn default_dashboards_follow_the_release_until_someone_changes_them() {
    use orbas_dashboards::store::{self, Installed};
    let LakeApp { app, tenant, db, dir: _dir, .. } = lake_app_with_dashboards().await;
    let defaults = store::defaults();
    let (release, edited) = (&defaults[0], &defaults[1]);
    let mut tx = db.begin(tenant).await.expect("tx");
    let id_of = |key: Option<String>| key.expect("defaults have keys");
    let (older, _) = orbas_oltp::repo::dashboards::standard_digest(tx.conn(), &id_of(release.key.clone()))
        .await
        .expect("read")
        .expect("installed");
    let (mine, _) = orbas_oltp::repo::dashboards::standard_digest(tx.conn(), &id_of(edited.key.clone()))
        .await
        .expect("read")
        .expect("installed");
    // One default dashboard as an earlier release laid it out (a widget fewer), installed before
    // digests were kept and untouched since: migration 25 marked it so.
    let mut earlier = release.clone();
    earlier.widgets.pop();
    store::replace(tx.conn(), older, &earlier).await.expect("the earlier layout");
    // Another an admin renamed.
    let renamed = orbas_dashboards::board::DashboardSpec { name: "Our numbers".into(), ..edited.clone() };
    store::replace(tx.conn(), mine, &renamed).await.expect("an admin's edit");
    tx.commit().await.expect("commit");
    sqlx::query("UPDATE dashboards SET standard_digest = 'unchanged since installed' WHERE id = $1")
        .bind(older)
        .execute(&app.db.admin)
        .await
        .expect("as migration 25 marks it");

    let mut tx = db.begin(tenant).await.expect("tx");
    let done = store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await.expect("install");
    assert_eq!(done, Installed { dashboards_upgraded: 1, ..Installed::default() });
    assert_eq!(store::load(tx.conn(), older).await.expect("load").spec(), *release, "the release's layout");
    assert_eq!(store::load(tx.conn(), mine).await.expect("load").spec(), renamed, "the admin's edit stays");
    let again = store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await.expect("install again");
    assert_eq!(again, Installed::default(), "installing a release twice changes nothing");
    tx.commit().await.expect("commit");
}
