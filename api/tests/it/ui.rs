//! The web UI in a real browser (Debian's headless Chromium through `orbas_testkit::browser`) and its
//! session rules over plain HTTP, against the real server and Postgres. Screenshots land in the test
//! artifacts directory (`$ORBAS_TEST_ARTIFACTS` or `<target>/test-artifacts/<test>/`).

use orbas_oltp::model::{EntityType, RecommendationAction, TenantId, UserId};
use orbas_oltp::repo::intelligence::{self, NewPrediction};
use orbas_oltp::repo::recommendations::{self, NewRecommendation};
use orbas_testkit::browser::{Browser, Page};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use uuid::Uuid;

use crate::helpers::{DEMO_PASSWORD, TestApp, spawn_app};

mod dashboards;

/// The first tenant's id and an active sales rep of it (id, e-mail) with no open recommendations.
async fn quiet_rep(app: &TestApp) -> (TenantId, Uuid, String) {
    let (tenant, user, email): (Uuid, Uuid, String) = sqlx::query_as(
        "SELECT t.id, u.id, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = 'sales_rep' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("a rep");
    sqlx::query("UPDATE recommendations SET status = 'expired' WHERE user_id = $1")
        .bind(user)
        .execute(&app.db.admin)
        .await
        .expect("clear the rep's recommendations");
    (TenantId(tenant), user, email)
}

/// A recommendation for `user`, written through the repository.
async fn recommend(
    app: &TestApp,
    tenant: TenantId,
    user: Uuid,
    on: (EntityType, Uuid),
    title: &str,
    score: f64,
) -> Uuid {
    let mut tx = app.db.app.begin(tenant).await.expect("tx");
    let new = NewRecommendation {
        user_id: UserId(user),
        entity_type: on.0,
        entity_id: on.1,
        action: RecommendationAction::Call,
        title: title.to_owned(),
        rationale: format!("{title}: the deal went quiet"),
        score,
        expires_at: None,
    };
    let rec = recommendations::create(tx.conn(), tenant, &new).await.expect("create recommendation");
    tx.commit().await.expect("commit");
    rec.id.0
}

async fn rec_status(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM recommendations WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.admin)
        .await
        .expect("recommendation status")
}

async fn browser_login(page: &Page, app: &TestApp, email: &str, password: &str) {
    page.goto(&format!("{}/ui/login", app.base)).await;
    page.fill("#tenant", &app.tenant_slug).await;
    page.fill("#email", email).await;
    page.fill("#password", password).await;
    page.click_and_wait("form.stacked button[type=submit]").await;
}

#[tokio::test]
async fn the_login_form_reports_errors_and_works_from_the_keyboard() {
    let app = spawn_app().await;
    let browser = Browser::launch("ui_login").await;
    let page = browser.open(&format!("{}/ui/inbox", app.base)).await;
    assert!(page.url().await.ends_with("/ui/login?next=%2Fui%2Finbox"), "{}", page.url().await);
    let labelled: bool = page
        .eval("['tenant', 'email', 'password'].every(id => document.querySelector(`label[for=${id}]`) !== null)")
        .await;
    assert!(labelled, "every field has a label");
    let first_stop: String = page.eval("document.querySelector('a, button, input, select').className").await;
    assert_eq!(first_stop, "skip-link", "the skip link is the first thing the keyboard reaches");

    browser_login(&page, &app, &app.admin_email, "not-the-password").await;
    assert_eq!(page.text("#login-error").await, "The workspace, e-mail or password is not right.");
    let described: String = page.eval("document.querySelector('form.stacked').getAttribute('aria-describedby')").await;
    assert_eq!(described, "login-error");
    let kept: (String, String) =
        page.eval("[document.querySelector('#tenant').value, document.querySelector('#password').value]").await;
    assert_eq!(kept, (app.tenant_slug.clone(), String::new()), "the workspace is kept, the password is not");
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("login-error").await;

    // Keyboard only: type, Tab to the next field, Enter submits.
    page.goto(&format!("{}/ui/login?next=%2Fui%2Finbox", app.base)).await;
    let _: bool = page.eval("(document.querySelector('#tenant').focus(), true)").await;
    page.type_text(&app.tenant_slug).await;
    page.press("Tab").await;
    assert_eq!(page.focused_id().await, "email");
    page.type_text(&app.admin_email).await;
    page.press("Tab").await;
    assert_eq!(page.focused_id().await, "password");
    page.type_text(DEMO_PASSWORD).await;
    page.press_and_wait("Enter").await;
    assert!(page.url().await.ends_with("/ui/inbox"), "{}", page.url().await);
    assert_eq!(page.text("h1").await, "Your next best actions");
    assert_eq!(page.text(".who").await, app.admin_email);
    page.screenshot("inbox-after-keyboard-login").await;
    browser.close().await;
}

#[tokio::test]
async fn the_inbox_lists_recommendations_best_first_and_records_accepts_and_dismissals_with_their_reason() {
    let app = spawn_app().await;
    let (tenant, rep, email) = quiet_rep(&app).await;
    let best = recommend(&app, tenant, rep, (EntityType::Account, Uuid::now_v7()), "Call the champion", 0.9).await;
    let second = recommend(&app, tenant, rep, (EntityType::Account, Uuid::now_v7()), "Send the case study", 0.5).await;
    sqlx::query("UPDATE recommendations SET expected_value = 1234.5, currency = 'EUR' WHERE id = $1")
        .bind(best)
        .execute(&app.db.admin)
        .await
        .expect("expected value");

    let browser = Browser::launch("ui_inbox").await;
    let page = browser.open(&format!("{}/ui/login", app.base)).await;
    browser_login(&page, &app, &email, DEMO_PASSWORD).await;
    assert_eq!(page.texts(".rec-title").await, ["Call the champion", "Send the case study"]);
    assert_eq!(page.text(&format!("#rec-{best} .rec-value")).await, "1234.50 EUR");
    assert_eq!(page.text(&format!("#rec-{best} .rec-reason")).await, "Call the champion: the deal went quiet");
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("inbox").await;

    page.fill(&format!("#reason-{best}"), "booked a call").await;
    page.click_and_wait(&format!("#rec-{best} button.accept")).await;
    assert_eq!(page.text(".notice").await, "Accepted. It is off your list.");
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    assert_eq!(page.texts(".rec-title").await, ["Send the case study"]);
    page.screenshot("inbox-after-accept").await;
    // Dismissed as not the rep's record: the reason's code is kept beside the note.
    let _: bool = page.eval(&format!("(document.querySelector('#why-{second}').value = 'not_mine', true)")).await;
    page.click_and_wait(&format!("#rec-{second} button.dismiss")).await;
    assert_eq!(page.text(".notice").await, "Dismissed. It is off your list.");
    assert!(!page.exists(".rec-title").await, "the inbox is empty");
    // A rep may not query the lake: no SQL in the menu, and the page says so.
    assert!(!page.texts("nav[aria-label=Main] a").await.contains(&"SQL".to_owned()));
    page.goto(&format!("{}/ui/sql", app.base)).await;
    assert_eq!(page.text("h1").await, "Not allowed");
    browser.close().await;

    assert_eq!(rec_status(&app, best).await, "accepted");
    let feedback: (String, Option<String>) =
        sqlx::query_as("SELECT verdict, reason FROM recommendation_feedback WHERE recommendation_id = $1")
            .bind(best)
            .fetch_one(&app.db.admin)
            .await
            .expect("feedback");
    assert_eq!(feedback, ("accept".to_owned(), Some("booked a call".to_owned())));
    let dismissal: (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT verdict, reason_code, reason FROM recommendation_feedback WHERE recommendation_id = $1")
            .bind(second)
            .fetch_one(&app.db.admin)
            .await
            .expect("dismissal");
    assert_eq!(dismissal, ("dismiss".to_owned(), Some("not_mine".to_owned()), None));
    let accepted_code: Option<String> =
        sqlx::query_scalar("SELECT reason_code FROM recommendation_feedback WHERE recommendation_id = $1")
            .bind(best)
            .fetch_one(&app.db.admin)
            .await
            .expect("accept");
    assert_eq!(accepted_code, None, "the select goes with every button; only a dismissal keeps it");
    let audits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE resource = 'recommendations' AND action = 'feedback' \
         AND resource_id = $1 AND actor_user_id = $2",
    )
    .bind(best)
    .bind(rep)
    .fetch_one(&app.db.admin)
    .await
    .expect("audit");
    assert_eq!(audits, 1);
    assert_eq!(rec_status(&app, second).await, "dismissed");
}

/// A `deal_win` score with two factors for `opportunity`, written through the repository.
async fn score_deal(app: &TestApp, tenant: TenantId, opportunity: Uuid) {
    let mut tx = app.db.app.begin(tenant).await.expect("tx");
    let c = tx.conn();
    let model =
        intelligence::ensure_model(c, tenant, "deal_win", "Deal win", "deal_score", "test").await.expect("model");
    let now = chrono::Utc::now();
    let v = intelligence::add_version(c, tenant, model.id, &serde_json::json!({}), &serde_json::json!({}), 10, now)
        .await
        .expect("version");
    let explanation = serde_json::json!([
        {"feature": "champion_engaged", "value": "yes", "contribution": 0.6},
        {"feature": "days_in_stage", "value": 41, "contribution": -0.8}
    ]);
    let p = NewPrediction {
        entity_type: EntityType::Opportunity,
        entity_id: opportunity,
        score: 0.73,
        label: None,
        explanation,
    };
    intelligence::add_predictions(c, tenant, v.id, now, &[p]).await.expect("prediction");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn record_pages_show_scores_with_their_factors_and_other_tenants_records_are_not_found() {
    let app = spawn_app().await;
    let (tenant, rep, email) = quiet_rep(&app).await;
    let (opp, opp_name, account, account_name): (Uuid, String, Uuid, String) = sqlx::query_as(
        "SELECT o.id, o.name, a.id, a.name FROM opportunities o JOIN accounts a ON a.id = o.account_id \
         WHERE o.tenant_id = $1 ORDER BY o.id LIMIT 1",
    )
    .bind(tenant.0)
    .fetch_one(&app.db.admin)
    .await
    .expect("an opportunity");
    let foreign: Uuid = sqlx::query_scalar("SELECT id FROM opportunities WHERE tenant_id <> $1 LIMIT 1")
        .bind(tenant.0)
        .fetch_one(&app.db.admin)
        .await
        .expect("another tenant's opportunity");
    score_deal(&app, tenant, opp).await;
    recommend(&app, tenant, rep, (EntityType::Opportunity, opp), "Book the exec sponsor", 0.8).await;

    let browser = Browser::launch("ui_records").await;
    let page = browser.open(&format!("{}/ui/login", app.base)).await;
    browser_login(&page, &app, &email, DEMO_PASSWORD).await;
    page.goto(&format!("{}/ui/opportunities/{opp}", app.base)).await;
    assert_eq!(page.text("h1").await, opp_name);
    assert_eq!(page.text(".score h3").await, "deal win: 73%");
    assert_eq!(page.texts(".factors tbody th").await, ["champion engaged", "days in stage"]);
    assert_eq!(page.texts(".factors tbody td.raises").await, ["+0.60 (raises)"]);
    assert_eq!(page.texts(".factors tbody td.lowers").await, ["-0.80 (lowers)"]);
    assert_eq!(page.texts("#recs-h + ol .rec-title").await, ["Book the exec sponsor"]);
    page.wait_for(".chart[data-rendered=true] svg").await; // the vendored ECharts drew the factors
    assert_eq!(page.low_contrast_texts().await, Vec::<String>::new(), "WCAG AA contrast");
    page.screenshot("opportunity").await;

    page.click_and_wait(".fields a").await;
    assert!(page.url().await.ends_with(&format!("/ui/accounts/{account}")), "{}", page.url().await);
    assert_eq!(page.text("h1").await, account_name);
    assert!(page.exists("#timeline-h").await);
    page.screenshot("account").await;

    page.goto(&format!("{}/ui/opportunities/{foreign}", app.base)).await;
    assert_eq!(page.text("h1").await, "Not found");
    assert_eq!(page.text(".error-code").await, "Error 404");
    page.screenshot("foreign-record").await;
    browser.close().await;
}

/// The `name=value` pairs a response sets, by name.
fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

fn cookie_value(set: &[String], name: &str) -> String {
    set.iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn cookie_sessions_refuse_cross_site_writes_and_renew_expired_access_tokens() {
    let app = spawn_app().await;
    let (tenant, rep, email) = quiet_rep(&app).await;
    let rec = recommend(&app, tenant, rep, (EntityType::Account, Uuid::now_v7()), "Follow up", 0.7).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let url = |p: &str| format!("{}{p}", app.base);
    let location = |r: &reqwest::Response| r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);

    let anon = http.get(url("/ui/inbox")).send().await.expect("get");
    assert_eq!((anon.status().as_u16(), location(&anon).as_deref()), (303, Some("/ui/login?next=%2Fui%2Finbox")));

    let form = [
        ("tenant", app.tenant_slug.as_str()),
        ("email", &email),
        ("password", DEMO_PASSWORD),
        ("next", "//evil.example/"),
    ];
    for origin in [None, Some("http://evil.example")] {
        let mut req = http.post(url("/ui/login")).form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status(), 403, "a login form from {origin:?}");
    }
    let login = http.post(url("/ui/login")).header("origin", &app.base).form(&form).send().await.expect("login");
    assert_eq!((login.status().as_u16(), location(&login).as_deref()), (303, Some("/ui/inbox")), "no open redirect");
    let set = set_cookies(login.headers());
    for name in ["orbas_at", "orbas_rt"] {
        let c = set.iter().find(|c| c.starts_with(&format!("{name}="))).expect("cookie set");
        assert!(c.contains("; Path=/; HttpOnly; SameSite=Strict"), "{c}");
        assert!(!c.contains("Secure"), "plain HTTP: {c}");
    }
    let behind_tls = http
        .post(url("/ui/login"))
        .header("origin", &app.base)
        .header("x-forwarded-proto", "https")
        .form(&form)
        .send()
        .await
        .expect("login");
    assert!(set_cookies(behind_tls.headers()).iter().all(|c| c.ends_with("; Secure")));
    let (at, rt) = (cookie_value(&set, "orbas_at"), cookie_value(&set, "orbas_rt"));
    let cookies = format!("orbas_at={at}; orbas_rt={rt}");

    // Writes authenticated by the cookie must come from this origin.
    let feedback = url(&format!("/ui/recommendations/{rec}/feedback"));
    let attempts: [&[(&str, &str)]; 3] =
        [&[], &[("origin", "http://evil.example")], &[("sec-fetch-site", "cross-site"), ("origin", "null")]];
    for headers in attempts {
        let mut req = http.post(&feedback).header("cookie", &cookies).form(&[("verdict", "dismiss")]);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status(), 403, "{headers:?}");
        assert!(r.text().await.unwrap_or_default().contains("sent from another site"));
    }
    assert_eq!(rec_status(&app, rec).await, "open", "refused writes change nothing");
    let ok = http
        .post(&feedback)
        .header("cookie", &cookies)
        .header("origin", &app.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("verdict", "snooze"), ("snooze_days", "3")])
        .send()
        .await
        .expect("post");
    assert_eq!((ok.status().as_u16(), location(&ok).as_deref()), (303, Some("/ui/inbox?done=snoozed")));
    // Input the rep can fix shows the inbox again with the reason.
    let too_long = "x".repeat(1001);
    let bad = http
        .post(url(&format!("/ui/recommendations/{rec}/feedback")))
        .header("cookie", &cookies)
        .header("origin", &app.base)
        .form(&[("verdict", "dismiss"), ("reason", too_long.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 422);
    let body = bad.text().await.unwrap_or_default();
    assert!(
        body.contains(
            "role=\"alert\">Your answer was not saved (invalid input: reason is longer than 1000 characters).</p>"
        ),
        "{body}"
    );
    // Someone else's recommendation is not found, as over the JSON API.
    let admin: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&app.admin_email)
        .fetch_one(&app.db.admin)
        .await
        .expect("admin");
    let theirs = recommend(&app, tenant, admin, (EntityType::Account, Uuid::now_v7()), "Not yours", 0.9).await;
    let not_mine = http
        .post(url(&format!("/ui/recommendations/{theirs}/feedback")))
        .header("cookie", &cookies)
        .header("origin", &app.base)
        .form(&[("verdict", "accept")])
        .send()
        .await
        .expect("post");
    assert_eq!(not_mine.status(), 404);
    assert_eq!(rec_status(&app, theirs).await, "open");

    // An expired access token is renewed with the refresh token, transparently.
    let keys = orbas_oltp::auth::jwt::AccessTokens::new(&secrecy::SecretString::from(crate::helpers::JWT_SECRET))
        .expect("keys");
    let mut claims = keys.verify(&at, chrono::Utc::now()).expect("claims");
    claims.iat -= 3600;
    claims.exp -= 3600;
    let expired = keys.issue(&claims).expect("expired token");
    let renewed =
        http.get(url("/ui/inbox")).header("cookie", format!("orbas_at={expired}; orbas_rt={rt}")).send().await;
    let renewed = renewed.expect("get");
    assert_eq!(renewed.status(), 200);
    let fresh = set_cookies(renewed.headers());
    let (at2, rt2) = (cookie_value(&fresh, "orbas_at"), cookie_value(&fresh, "orbas_rt"));
    assert!(!at2.is_empty() && rt2 != rt, "new tokens: {fresh:?}");
    let page = http.get(url("/ui/inbox")).header("cookie", format!("orbas_at={at2}; orbas_rt={rt2}")).send().await;
    assert_eq!(page.expect("get").status(), 200);
    // The rotated-away refresh token is dead: replaying it ends the session.
    let replay = http.get(url("/ui/inbox")).header("cookie", format!("orbas_at={expired}; orbas_rt={rt}")).send().await;
    assert_eq!(replay.expect("get").status(), 303);

    // Pages and assets.
    let fresh_cookies = {
        let r = http.post(url("/ui/login")).header("origin", &app.base).form(&form).send().await.expect("login");
        let s = set_cookies(r.headers());
        format!("orbas_at={}; orbas_rt={}", cookie_value(&s, "orbas_at"), cookie_value(&s, "orbas_rt"))
    };
    let get = |p: &str| http.get(url(p)).header("cookie", &fresh_cookies).send();
    let search = get("/ui/search?q=acme").await.expect("search");
    assert_eq!(search.status(), 503);
    assert!(search.text().await.unwrap_or_default().contains("Search is not available right now."));
    let malformed = get("/ui/accounts/not-an-id").await.expect("get");
    assert_eq!(malformed.status(), 404);
    assert!(malformed.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
    let nowhere = get("/ui/no-such-page").await.expect("get");
    assert_eq!(nowhere.status(), 404);
    let html = get("/ui/inbox").await.expect("inbox").text().await.unwrap_or_default();
    let css = html.split("href=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
    assert!(css.starts_with("/ui/assets/") && css.ends_with("/app.css"), "{css}");
    let asset = http.get(url(&css)).send().await.expect("asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(asset.headers()["content-type"], "text/css; charset=utf-8");
    let stale = http.get(url("/ui/assets/000000000000/app.css")).send().await.expect("asset");
    assert_eq!(stale.status(), 404);

    // Logging out ends the session: its cookies no longer open pages.
    let out = http.post(url("/ui/logout")).header("cookie", &fresh_cookies).header("origin", &app.base).send().await;
    let out = out.expect("logout");
    assert_eq!((out.status().as_u16(), location(&out).as_deref()), (303, Some("/ui/login")));
    assert_eq!(get("/ui/inbox").await.expect("get").status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_search_box_finds_an_account_and_opens_its_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = std::sync::Arc::new(
        orbas_search::SearchIndex::open(dir.path(), orbas_search::Access::Writer, None).expect("index"),
    );
    let app = crate::helpers::spawn_app_with(None, Some(ix.clone())).await;
    crate::search::fill(&ix, &app.db).await;
    let (account, name): (Uuid, String) = sqlx::query_as(
        "SELECT a.id, a.name FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1 ORDER BY a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");

    let browser = Browser::launch("ui_search").await;
    let page = browser.open(&format!("{}/ui/login", app.base)).await;
    browser_login(&page, &app, &app.admin_email, DEMO_PASSWORD).await;
    page.fill("#global-search", &name).await;
    page.press_and_wait("Enter").await;
    assert!(page.url().await.contains("/ui/search?q="), "{}", page.url().await);
    let link = format!(".hits a[href='/ui/accounts/{account}']");
    assert_eq!(page.text(&link).await, name);
    let kept: String = page.eval("document.querySelector('#global-search').value").await;
    assert_eq!(kept, name, "the search box keeps the query");
    page.screenshot("search").await;
    page.click_and_wait(&link).await;
    assert_eq!(page.text("h1").await, name);
    browser.close().await;
}
