//! The dashboard pages in a real browser over a real lake (seeded CRM → CDC → broker → sink): the
//! numbers a manager sees equal Postgres' own counts, charts draw, the filter form narrows them to one
//! owner, a row's "show records" opens the records behind it, and the editor previews and saves a widget.

use orbas_dashboards::board::DashboardSpec;
use orbas_oltp::db::Db;
use orbas_oltp::model::{TenantId, UserId};
use orbas_testkit::browser::Browser;
use serde_json::json;
use uuid::Uuid;

use super::browser_login;
use crate::helpers::{DEMO_PASSWORD, TestApp, admin_token, flow, landed, pdf_text, send, spawn_app_rendering};

async fn won(app: &TestApp, tenant: TenantId, owner: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM opportunities WHERE tenant_id = $1 AND status = 'won' \
         AND ($2::text IS NULL OR owner_id::text = $2)",
    )
    .bind(tenant)
    .bind(owner)
    .fetch_one(&app.db.admin)
    .await
    .expect("won deals")
}

/// Whether the canvas inside `selector` has any painted pixel.
fn painted(selector: &str) -> String {
    format!(
        "(() => {{ const c = document.querySelector('{selector} canvas'); if (!c || !c.width) return false; \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_reads_filters_drills_into_and_extends_a_dashboard_in_the_browser() {
    let dir = tempfile::tempdir().expect("lake dir");
    let root = url::Url::from_directory_path(dir.path()).expect("lake url");
    let renderer =
        std::sync::Arc::new(orbas_dashboards::render::Renderer::new(orbas_testkit::browser::chromium_path()));
    let app = spawn_app_rendering(Some(root.clone()), None, Some(renderer.clone())).await;
    let (tenant, manager, email): (Uuid, Uuid, String) = sqlx::query_as(
        "SELECT t.id, u.id, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = 'manager' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("a manager");
    let tenant = TenantId(tenant);
    let db = Db::new(app.db.app.pool().clone());
    let spec: DashboardSpec = serde_json::from_value(json!({
        "name": "Won deals", "description": "Every won deal, by owner",
        "filters": {"range": "all"},
        "widgets": [
            {"kpi": "won_deals", "kind": "tile", "title": "Deals won", "x": 0, "y": 0, "w": 3, "h": 2},
            {"kpi": "won_deals", "kind": "bar", "title": "Won by owner",
             "config": {"grain": "total", "group_by": ["owner"]}, "x": 3, "y": 0, "w": 9, "h": 4}
        ]
    }))
    .expect("spec");
    let mut tx = db.begin(tenant).await.expect("tx");
    orbas_dashboards::store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await.expect("install");
    tx.commit().await.expect("commit");
    let f = flow(&app, &root).await;
    for t in ["opportunities", "accounts", "kpi_definitions"] {
        landed(&app, &f.lake, tenant, t).await;
    }
    // Won deals by owner, from silver (the standard deals_won comes from gold, which has no owner).
    let won_deals = json!({
        "key": "won_deals", "name": "Won deals", "source": "opportunities", "measure": "COUNT(*)",
        "time": "close_date", "filter": "status = 'won'", "dimensions": [{"name": "owner", "column": "owner_id"}],
        "drill": "SELECT id AS opportunity_id, account_id, name, amount, currency, owner_id, close_date, status \
                  FROM opportunities WHERE status = 'won'"
    });
    let admin = admin_token(&app).await;
    let (code, body) = send(app.http.post(format!("{}/v1/kpis", app.base)).json(&won_deals), &admin).await;
    assert_eq!(code, 201, "{body}");
    let mut tx = db.begin(tenant).await.expect("tx");
    let board = orbas_dashboards::store::create(tx.conn(), tenant, Some(UserId(manager)), &spec).await.expect("board");
    tx.commit().await.expect("commit");
    let board = board.id.0;
    let all = won(&app, tenant, None).await;
    let (owner, owned): (String, i64) = sqlx::query_as(
        "SELECT owner_id::text, count(*) FROM opportunities WHERE tenant_id = $1 AND status = 'won' \
         AND owner_id IS NOT NULL GROUP BY owner_id ORDER BY count(*) DESC, owner_id LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&app.db.admin)
    .await
    .expect("an owner with won deals");
    assert!(owned < all, "the owner filter must change the number ({owned} of {all})");

    // The dashboard: the tile equals Postgres' count, the bar chart is drawn.
    let browser = Browser::launch("ui_dashboards").await;
    let page = browser.open(&format!("{}/ui/login", app.base)).await;
    browser_login(&page, &app, &email, DEMO_PASSWORD).await;
    page.goto(&format!("{}/ui/dashboards", app.base)).await;
    assert!(page.texts("ul.boards a").await.contains(&"Won deals".to_owned()));
    page.screenshot("list").await;
    page.goto(&format!("{}/ui/dashboards/{board}", app.base)).await;
    assert_eq!(page.text("h1").await, "Won deals");
    let tile = ".widget-tile .tile-value";
    assert_eq!(page.eval::<String>(&format!("document.querySelector('{tile}').dataset.value")).await, all.to_string());
    assert_eq!(page.text(tile).await.replace(',', ""), all.to_string());
    page.wait_for(".widget-bar .chart[data-rendered=true] canvas").await;
    assert!(page.eval::<bool>(&painted(".widget-bar .chart")).await, "the bar chart painted its canvas");
    let instance: bool =
        page.eval("echarts.getInstanceByDom(document.querySelector('.widget-bar .chart')) !== undefined").await;
    assert!(instance, "an ECharts instance drives the chart");
    let label: String = page.eval("document.querySelector('.widget-bar .chart').getAttribute('aria-label')").await;
    assert!(label.starts_with("Won by owner: bar chart of "), "{label}");
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("dashboard").await;

    // The owner filter, through the form: in the URL, and the numbers are that owner's.
    page.fill("#f-owner", &owner).await;
    page.click_and_wait("form.filters button[type=submit]").await;
    assert!(page.url().await.contains(&format!("owner={owner}")), "{}", page.url().await);
    assert_eq!(
        page.eval::<String>(&format!("document.querySelector('{tile}').dataset.value")).await,
        owned.to_string()
    );
    assert_eq!(page.eval::<String>("document.querySelector('#f-owner').value").await, owner);
    page.wait_for(".widget-bar .chart[data-rendered=true] canvas").await;
    page.screenshot("filtered-by-owner").await;

    // "Download as PDF" prints what the page shows, under the same filters and the same session.
    let href: String = page.eval("document.querySelector('a.pdf-link').getAttribute('href')").await;
    assert!(
        href.starts_with(&format!("/ui/dashboards/{board}/pdf?")) && href.contains(&format!("owner={owner}")),
        "{href}"
    );
    let (kind, b64): (String, String) = page
        .eval(&format!(
            "fetch({href:?}).then(async r => {{ const b = new Uint8Array(await r.arrayBuffer()); let s = ''; \
             for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]); \
             return [r.status + ' ' + r.headers.get('content-type'), btoa(s)]; }})"
        ))
        .await;
    assert_eq!(kind, "200 application/pdf");
    let pdf = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("base64");
    let text = pdf_text(&pdf);
    assert!(text.contains("Won deals") && text.contains("Won by owner"), "{text}");
    let figures: Vec<String> = text.split_whitespace().map(|w| w.replace(',', "")).collect();
    assert!(figures.contains(&owned.to_string()), "the owner's {owned} won deals in {text}");

    // Clicking the bar opens the records behind it.
    let (x, y): (f64, f64) = page
        .eval(
            "(() => { const el = document.querySelector('.widget-bar .chart'); el.scrollIntoView({block: 'center'}); \
             const c = echarts.getInstanceByDom(el); const v = c.getOption().series[0].data[0].value; \
             const p = c.convertToPixel({seriesIndex: 0}, [0, v / 2]); const r = el.getBoundingClientRect(); \
             return [r.left + p[0], r.top + p[1]]; })()",
        )
        .await;
    page.click_at_and_wait(x, y).await;
    assert!(page.url().await.contains("/drill?widget="), "{}", page.url().await);
    assert_eq!(page.texts("table.data tbody tr").await.len() as i64, owned.min(200), "the clicked bar's records");
    page.screenshot("drill-from-chart").await;
    page.goto(&format!("{}/ui/dashboards/{board}?owner={owner}", app.base)).await;

    // Drill-down from the bar's data table (the keyboard's way to the records behind a bar).
    let _: bool = page.eval("(document.querySelector('.widget-bar details').open = true, true)").await;
    assert_eq!(page.texts(".widget-bar a.drill").await.len(), 1, "one bar: the owner's");
    let name: String = sqlx::query_scalar("SELECT full_name FROM users WHERE id::text = $1")
        .bind(&owner)
        .fetch_one(&app.db.admin)
        .await
        .expect("the owner's name");
    assert_eq!(page.texts(".widget-bar table.data tbody td:first-child").await, [name], "owners show by name");
    page.click_and_wait(".widget-bar a.drill").await;
    assert!(page.url().await.contains("/drill?widget="), "{}", page.url().await);
    assert_eq!(page.text("h1").await, "Records behind Won by owner");
    page.screenshot("drill").await;
    let rows = page.texts("table.data tbody tr").await.len() as i64;
    assert_eq!(rows, owned.min(200), "the owner's won deals: {}", page.text("main").await);
    let links = page.texts("table.data tbody a[href^='/ui/opportunities/']").await.len() as i64;
    assert_eq!(links, rows, "each record links to its page");
    page.click_and_wait("table.data tbody a[href^='/ui/opportunities/']").await;
    assert!(page.url().await.contains("/ui/opportunities/"), "{}", page.url().await);

    // The editor: a pie of won deals by owner, previewed, then saved.
    page.goto(&format!("{}/ui/dashboards/{board}/edit", app.base)).await;
    // SQL over the lake (managers may query it): an error shows in place of the preview.
    page.click("input[name=source][value=sql]").await;
    page.fill("#w-sql", "SELECT no_such_column FROM opportunities").await;
    page.click("#preview-button").await;
    // Earlier previews (each change previews) may answer first; wait for the one of this query.
    let error_names = |what: &str| {
        format!(
            "(e => e !== null && e.innerText.includes('{what}'))(document.querySelector('#preview-body .preview-error'))"
        )
    };
    page.wait_until("the SQL error is shown", &error_names("no_such_column")).await;
    page.screenshot("editor-sql-error").await;
    let error = page.text("#preview-body .preview-error").await;
    assert!(error.contains("no_such_column"), "the SQL error is shown: {error}");
    page.fill("#w-sql", "").await;
    page.click("input[name=source][value=kpi]").await;
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT owner_id) + (count(*) FILTER (WHERE owner_id IS NULL) > 0)::int \
         FROM opportunities WHERE tenant_id = $1 AND status = 'won'",
    )
    .bind(tenant)
    .fetch_one(&app.db.admin)
    .await
    .expect("owners");
    page.fill("#w-title", "Won deals by owner").await;
    let _: bool = page
        .eval("(document.querySelector('#w-kpi').value = 'won_deals', document.querySelector('#w-kind').value = 'pie', true)")
        .await;
    page.fill("#w-group", "owner").await;
    page.click("#preview-button").await;
    let rows = format!("document.querySelectorAll('#preview-body .preview-table tbody tr').length === {owners}");
    page.wait_until("the preview lists every owner", &rows).await;
    let first: String = page.eval("document.querySelector('#preview-body .preview-table tbody td').innerText").await;
    assert!(uuid::Uuid::parse_str(&first).is_err(), "owners show by name in the preview too: {first}");
    page.wait_for("#preview-body .chart[data-rendered=true] canvas").await;
    assert!(page.eval::<bool>(&painted("#preview-body .chart")).await, "the preview painted its pie");
    page.screenshot("editor-preview").await;
    // An unknown breakdown is reported in place.
    page.fill("#w-group", "planet").await;
    page.click("#preview-button").await;
    page.wait_until("the error names the unknown breakdown", &error_names("planet")).await;
    page.fill("#w-group", "owner").await;
    page.click_and_wait("form.editor button[type=submit]").await;
    assert_eq!(page.text(".notice").await, "The widget was added.");
    assert!(page.texts(".widget h2").await.contains(&"Won deals by owner".to_owned()));
    page.wait_for(".widget-pie .chart[data-rendered=true] canvas").await;
    page.screenshot("dashboard-with-new-widget").await;

    // The SQL page (managers may query the lake): the query answers as Postgres counts, run from the
    // keyboard (Ctrl+Enter).
    page.click_and_wait("nav[aria-label=Main] a[href='/ui/sql']").await;
    assert_eq!(page.text("h1").await, "SQL");
    assert_eq!(page.eval::<String>("document.querySelector('label[for=sql]').textContent").await, "Query");
    page.fill("#sql", "SELECT count(*) AS n FROM opportunities WHERE status = 'won'").await;
    let _: bool = page
        .eval(
            "document.querySelector('#sql').dispatchEvent(new KeyboardEvent('keydown', \
             {key: 'Enter', ctrlKey: true, bubbles: true, cancelable: true}))",
        )
        .await;
    page.wait_for(".sql-result table.data td").await;
    assert_eq!(page.texts(".sql-result table.data th").await, ["n"]);
    assert_eq!(page.texts(".sql-result table.data td").await, [all.to_string()]);
    assert_eq!(page.text(".sql-result [role=status]").await.split(' ').next(), Some("1"));
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("sql").await;
    // A query that does not plan says why and keeps the text to fix; a write is refused.
    page.fill("#sql", "SELECT nope FROM opportunities").await;
    page.click_and_wait("form.sql-form button[type=submit]").await;
    let error = page.text(".sql-error[role=alert]").await;
    assert!(error.contains("nope"), "{error}");
    assert_eq!(page.eval::<String>("document.querySelector('#sql').value").await, "SELECT nope FROM opportunities");
    page.fill("#sql", "DELETE FROM opportunities").await;
    page.click_and_wait("form.sql-form button[type=submit]").await;
    let error = page.text(".sql-error[role=alert]").await;
    assert!(error.contains("only queries are allowed"), "{error}");
    assert!(!page.exists(".sql-result").await);

    // The status page: the change stream's slot has its consumer (the CDC task), the lake holds the
    // tables the flow wrote; without a search index search is "not configured".
    let slot: String = sqlx::query_scalar(
        "SELECT slot_name::text FROM pg_replication_slots WHERE database = current_database() AND active",
    )
    .fetch_one(&app.db.admin)
    .await
    .expect("the flow's slot");
    page.click_and_wait("nav[aria-label=Main] a[href='/ui/status']").await;
    assert_eq!(page.text("h1").await, "Status");
    let cdc = page.texts("#status-change-capture table.data td").await;
    assert_eq!(cdc.get(..2), Some(&[slot.clone(), "connected".to_owned()][..]), "{cdc:?}");
    assert!(page.text("#status-change-capture h2").await.contains("Working"));
    let lake = page.texts("#status-lake dd").await;
    let silver: usize = lake.first().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(silver >= 3, "opportunities, accounts, kpi_definitions and more: {lake:?}");
    assert!(lake.get(2).is_some_and(|t| t.contains(" ago (") || t.starts_with("just now")), "{lake:?}");
    assert!(page.text("#status-search h2").await.contains("Not configured"));
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("status").await;
    // The same process's /metrics: the slot's consumer, the sink's lag and latency, lake queries.
    // A scrape samples the slots and the lake within a budget; on a busy machine the lake's answer
    // may land after it, and then the next scrape carries it.
    let names = [
        format!("orbas_cdc_slot_active{{slot=\"{slot}\"}} 1"),
        "orbas_lake_consumer_lag_messages ".to_owned(),
        "orbas_lake_end_to_end_seconds_count ".to_owned(),
        "orbas_lake_newest_commit_timestamp_seconds{layer=\"silver\"}".to_owned(),
        "orbas_lake_query_seconds_count{outcome=\"ok\"}".to_owned(),
        "orbas_lake_query_seconds_count{outcome=\"invalid\"}".to_owned(),
        "orbas_dashboards_cache_requests_total{result=\"miss\"}".to_owned(),
    ];
    let scrape = || async {
        app.http.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text")
    };
    let mut metrics = scrape().await;
    for _ in 0..300 {
        if names.iter().all(|n| metrics.contains(n.as_str())) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        metrics = scrape().await;
    }
    for name in &names {
        assert!(metrics.contains(name.as_str()), "no {name} in /metrics");
    }
    browser.close().await;
    renderer.close().await;

    let (kind, config): (String, serde_json::Value) =
        sqlx::query_as("SELECT kind, config FROM dashboard_widgets WHERE dashboard_id = $1 AND title = $2")
            .bind(board)
            .bind("Won deals by owner")
            .fetch_one(&app.db.admin)
            .await
            .expect("the saved widget");
    assert_eq!((kind.as_str(), config["group_by"].clone()), ("pie", json!(["owner"])));
    let audits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE resource = 'dashboards' AND action = 'add_widget' AND resource_id = $1 \
         AND actor_user_id = $2",
    )
    .bind(board)
    .bind(manager)
    .fetch_one(&app.db.admin)
    .await
    .expect("audit");
    assert_eq!(audits, 1);
}
