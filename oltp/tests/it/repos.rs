//! Repositories against a real database, through the unprivileged role and tenant-scoped transactions.

use orbas_oltp::model::{OpportunityKind, OpportunityStatus, StageId, TenantId, UserId};
use orbas_oltp::repo::{accounts, contacts, kpis, opportunities, recommendations, table, tasks, tickets};
use orbas_oltp::{Error, ErrorKind, seed};
use rust_decimal::Decimal;
use sqlx::PgPool;

async fn setup() -> (orbas_testkit::TestDb, TenantId, TenantId) {
    let t = orbas_testkit::fresh_db().await;
    let report = seed::load(&t.admin, &seed::SeedConfig::new(2, 0.01, 11).expect("cfg")).await.expect("seed");
    (t, report.tenants[0].0, report.tenants[1].0)
}

async fn stage(admin: &PgPool, tenant: TenantId, pick: &str) -> StageId {
    let sql = format!(
        "SELECT id FROM pipeline_stages WHERE tenant_id = $1 AND pipeline = 'default' AND {pick} ORDER BY position LIMIT 1"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(tenant).fetch_one(admin).await.expect("stage")
}

async fn a_user(admin: &PgPool, tenant: TenantId) -> UserId {
    sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 ORDER BY id LIMIT 1")
        .bind(tenant)
        .fetch_one(admin)
        .await
        .expect("user")
}

#[tokio::test]
async fn another_tenants_record_is_not_found_and_cannot_be_referenced() {
    let (t, a, b) = setup().await;
    let mut tx = t.app.begin(b).await.expect("begin b");
    let b_account =
        accounts::create(tx.conn(), b, &accounts::NewAccount { name: "Globex".into(), ..Default::default() })
            .await
            .expect("create in b");
    tx.commit().await.expect("commit");

    let mut tx = t.app.begin(a).await.expect("begin a");
    let err = accounts::get(tx.conn(), b_account.id).await.err().map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::NotFound));
    // A contact in A pointing at B's account: the composite FK refuses it, as a missing reference.
    let new = contacts::NewContact {
        account_id: Some(b_account.id),
        first_name: "Eve".into(),
        last_name: "Mallory".into(),
        ..Default::default()
    };
    let err = contacts::create(tx.conn(), a, &new).await.err();
    assert!(matches!(err, Some(Error::MissingReference { .. })), "got {err:?}");
}

#[tokio::test]
async fn stage_changes_follow_the_policy_and_are_recorded() {
    let (t, a, _) = setup().await;
    let owner = a_user(&t.admin, a).await;
    let won = stage(&t.admin, a, "is_won").await;
    let lost = stage(&t.admin, a, "is_lost").await;
    let later_open = stage(&t.admin, a, "NOT is_won AND NOT is_lost AND position > 0").await;

    let mut tx = t.app.begin(a).await.expect("begin");
    let acct = accounts::create(tx.conn(), a, &accounts::NewAccount { name: "Initech".into(), ..Default::default() })
        .await
        .expect("account");
    let new = opportunities::NewOpportunity {
        account_id: acct.id,
        primary_contact_id: None,
        owner_id: Some(owner),
        name: "Initech platform".into(),
        kind: OpportunityKind::NewBusiness,
        amount: Decimal::new(0, 0),
        currency: "USD".into(),
        close_date: chrono::NaiveDate::from_ymd_opt(2027, 3, 31).expect("date"),
    };
    let opp = opportunities::create(tx.conn(), a, &new, Some(owner)).await.expect("opportunity");
    assert_eq!(opp.status, OpportunityStatus::Open);

    // Jumping to won without the fields earlier stages require is refused and changes nothing.
    let refused = opportunities::change_stage(tx.conn(), opp.id, won, Some(owner)).await;
    let msg = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("requires"), "expected a policy refusal, got {msg:?}");

    let contact = contacts::create(
        tx.conn(),
        a,
        &contacts::NewContact {
            account_id: Some(acct.id),
            first_name: "Bill".into(),
            last_name: "Lumbergh".into(),
            ..Default::default()
        },
    )
    .await
    .expect("contact");
    let patch = opportunities::OpportunityPatch {
        amount: Some(Decimal::new(4_200_000, 2)),
        primary_contact_id: Some(contact.id),
        next_step: Some("send proposal".into()),
        lost_reason: Some("n/a".into()),
        ..Default::default()
    };
    opportunities::update(tx.conn(), opp.id, &patch, Some(owner)).await.expect("patch");
    // The same close date is no change; a new one is recorded with who moved it, from and to.
    let same = opportunities::OpportunityPatch { close_date: Some(new.close_date), ..Default::default() };
    opportunities::update(tx.conn(), opp.id, &same, Some(owner)).await.expect("same date");
    let pushed = chrono::NaiveDate::from_ymd_opt(2027, 6, 30).expect("date");
    let push = opportunities::OpportunityPatch { close_date: Some(pushed), ..Default::default() };
    let moved = opportunities::update(tx.conn(), opp.id, &push, Some(owner)).await.expect("push");
    assert_eq!(moved.close_date, pushed);
    let changes = opportunities::close_date_history(tx.conn(), opp.id).await.expect("close-date history");
    let seen: Vec<_> = changes.iter().map(|c| (c.from_date, c.to_date, c.changed_by)).collect();
    assert_eq!(seen, vec![(new.close_date, pushed, Some(owner))]);
    let moved = opportunities::change_stage(tx.conn(), opp.id, later_open, Some(owner)).await.expect("advance");
    assert_eq!(moved.stage_id, later_open);
    let closed = opportunities::change_stage(tx.conn(), opp.id, won, Some(owner)).await.expect("win");
    assert_eq!(closed.status, OpportunityStatus::Won);
    assert!(closed.closed_at.is_some());
    let reopen = opportunities::change_stage(tx.conn(), opp.id, lost, Some(owner)).await;
    assert!(reopen.is_err(), "a won deal must not move again");

    let history = opportunities::stage_history(tx.conn(), opp.id).await.expect("history");
    let path: Vec<_> = history.iter().map(|h| (h.from_stage_id, h.to_stage_id)).collect();
    assert_eq!(path, vec![(None, opp.stage_id), (Some(opp.stage_id), later_open), (Some(later_open), won)]);
    assert_eq!(history[2].amount, Decimal::new(4_200_000, 2));
}

#[tokio::test]
async fn tasks_tickets_and_recommendations_round_trip() {
    let (t, a, _) = setup().await;
    let user = a_user(&t.admin, a).await;
    let mut tx = t.app.begin(a).await.expect("begin");

    let new_task = tasks::NewTask {
        kind: orbas_oltp::model::TaskKind::Call,
        subject: "Call about renewal".into(),
        description: None,
        priority: None,
        owner_id: Some(user),
        account_id: None,
        contact_id: None,
        lead_id: None,
        opportunity_id: None,
        ticket_id: None,
        due_at: None,
        sla_due_at: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
    };
    let task = tasks::create(tx.conn(), a, &new_task).await.expect("task");
    let breaches = tasks::sla_breaches(tx.conn(), user, chrono::Utc::now()).await.expect("breaches");
    assert!(breaches.iter().any(|b| b.id == task.id));
    let done = tasks::set_status(tx.conn(), task.id, orbas_oltp::model::TaskStatus::Completed).await.expect("complete");
    assert!(done.completed_at.is_some());
    let req = table::ListRequest {
        filters: vec![(table::eq("owner_id", "uuid"), user.0.to_string())],
        owners: Some(vec![user]),
        sort: tasks::TABLE.sort(Some("-created_at")).expect("sort"),
        after: None,
        limit: 1,
    };
    let page: table::Listed<tasks::Task> = table::list(tx.conn(), &tasks::TABLE, &req).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].owner_id, Some(user));

    let ticket = tickets::create(
        tx.conn(),
        a,
        &tickets::NewTicket {
            account_id: None,
            contact_id: None,
            owner_id: Some(user),
            subject: "Export fails".into(),
            description: Some("CSV export times out".into()),
            priority: Some(orbas_oltp::model::Priority::High),
            channel: Some(orbas_oltp::model::TicketChannel::Email),
            category: None,
        },
    )
    .await
    .expect("ticket");
    assert!(ticket.number.starts_with("TCK-"), "{}", ticket.number);
    tickets::add_message(tx.conn(), a, ticket.id, Some(user), "Looking into it", false).await.expect("reply");
    let reloaded = tickets::get(tx.conn(), ticket.id).await.expect("get");
    assert!(reloaded.first_responded_at.is_some());
    assert_eq!(reloaded.status, orbas_oltp::model::TicketStatus::Open);

    let rec = recommendations::create(
        tx.conn(),
        a,
        &recommendations::NewRecommendation {
            user_id: user,
            entity_type: orbas_oltp::model::EntityType::Ticket,
            entity_id: ticket.id.0,
            action: orbas_oltp::model::RecommendationAction::Escalate,
            title: "Escalate the export issue".into(),
            rationale: "High-priority ticket from an at-risk account".into(),
            score: 0.99,
            expires_at: None,
        },
    )
    .await
    .expect("recommendation");
    let mine = recommendations::for_user(tx.conn(), user, chrono::Utc::now(), 500).await.expect("mine");
    assert_eq!(mine.first().map(|r| r.id), Some(rec.id), "highest score first");
    let fb = recommendations::Feedback {
        verdict: orbas_oltp::model::FeedbackVerdict::Snooze,
        reason_code: None,
        reason: Some("customer on vacation".into()),
        snooze_until: Some(chrono::Utc::now() + chrono::Duration::days(3)),
    };
    let snoozed = recommendations::give_feedback(tx.conn(), a, rec.id, user, &fb).await.expect("feedback");
    assert_eq!(snoozed.status, orbas_oltp::model::RecommendationStatus::Snoozed);
    let mine = recommendations::for_user(tx.conn(), user, chrono::Utc::now(), 500).await.expect("mine");
    assert!(mine.iter().all(|r| r.id != rec.id), "a snoozed recommendation is hidden until the snooze ends");
}

/// A standard KPI as a release ships it.
fn standard(key: &str, measure: &str, description: &str) -> kpis::KpiWrite {
    kpis::KpiWrite {
        key: key.to_owned(),
        name: format!("Standard {key}"),
        description: Some(description.to_owned()),
        definition: serde_json::json!({"source": "gold.deals", "measure": measure, "grain": "month"}),
        unit: "count".to_owned(),
        good_direction: "up".to_owned(),
    }
}

#[tokio::test]
async fn standard_kpis_follow_the_release_until_someone_changes_them() {
    let (t, a, b) = setup().await;
    let at = chrono::Utc::now();
    let release1 = [
        standard("follows", "SUM(won)", "v1"),
        standard("edited", "SUM(lost)", "v1"),
        standard("same", "COUNT(*)", ""),
    ];
    let release2 = [
        standard("follows", "SUM(won) - SUM(stale)", "v2: leaves stale answers out"),
        standard("edited", "SUM(lost) - SUM(stale)", "v2"),
        standard("same", "COUNT(*)", ""),
        standard("added", "AVG(amount)", "new in v2"),
    ];
    let read = |tenant: TenantId, key: &'static str| {
        let app = t.app.clone();
        async move {
            let mut tx = app.begin(tenant).await.expect("begin");
            let row = kpis::by_key(tx.conn(), key, false).await.expect("kpi");
            tx.commit().await.expect("commit");
            row
        }
    };

    // Tenant b was installed by a release before the digest existed (the column is dropped to stand
    // for that schema): one standard KPI an admin edited later, the others untouched. The migration
    // tells them apart by their timestamps.
    sqlx::raw_sql("ALTER TABLE kpi_definitions DROP COLUMN standard_digest").execute(&t.admin).await.expect("drop");
    for w in &release1 {
        sqlx::query(
            "INSERT INTO kpi_definitions (tenant_id, id, key, name, description, definition, unit, good_direction,
                                          status, approved_at, is_standard)
             VALUES ($1, gen_random_uuid(), $2, $3, $4, $5, $6, $7, 'approved', now(), true)",
        )
        .bind(b)
        .bind(&w.key)
        .bind(&w.name)
        .bind(&w.description)
        .bind(&w.definition)
        .bind(&w.unit)
        .bind(&w.good_direction)
        .execute(&t.admin)
        .await
        .expect("an old release's install");
    }
    sqlx::query("UPDATE kpi_definitions SET name = 'Our lost deals' WHERE tenant_id = $1 AND key = 'edited'")
        .bind(b)
        .execute(&t.admin)
        .await
        .expect("an admin's edit");
    sqlx::raw_sql(include_str!("../../../migrations/20261207000024_standard_kpi_upgrades.sql"))
        .execute(&t.admin)
        .await
        .expect("the migration");

    // Tenant a is installed by release 1 now; an admin then edits one of its standard KPIs.
    let mut tx = t.app.begin(a).await.expect("begin");
    let first = kpis::install_standard(tx.conn(), a, &release1, at).await.expect("release 1");
    assert_eq!(first, kpis::Installed { added: 3, upgraded: 0 });
    let mine = kpis::KpiWrite { name: "Our lost deals".into(), ..release1[1].clone() };
    kpis::update(tx.conn(), "edited", &mine).await.expect("an admin's edit");
    tx.commit().await.expect("commit");

    for tenant in [a, b] {
        let same_before = read(tenant, "same").await;
        let mut tx = t.app.begin(tenant).await.expect("begin");
        let done = kpis::install_standard(tx.conn(), tenant, &release2, at).await.expect("release 2");
        tx.commit().await.expect("commit");
        assert_eq!(done, kpis::Installed { added: 1, upgraded: 1 }, "tenant {tenant}");

        let follows = read(tenant, "follows").await;
        assert_eq!(
            (follows.definition, follows.description.as_deref(), follows.status.as_str(), follows.is_standard),
            (release2[0].definition.clone(), Some("v2: leaves stale answers out"), "approved", true),
            "an unchanged standard KPI takes the release's content"
        );
        let edited = read(tenant, "edited").await;
        assert_eq!(
            (edited.name.as_str(), edited.definition),
            ("Our lost deals", release1[1].definition.clone()),
            "an edited standard KPI keeps the admin's content"
        );
        assert_eq!(read(tenant, "same").await, same_before, "nothing to move: not written");
        assert_eq!(read(tenant, "added").await.definition, release2[3].definition);

        let mut tx = t.app.begin(tenant).await.expect("begin");
        let again = kpis::install_standard(tx.conn(), tenant, &release2, at).await.expect("again");
        tx.commit().await.expect("commit");
        assert_eq!(again, kpis::Installed::default(), "installing a release twice changes nothing");
    }
}
