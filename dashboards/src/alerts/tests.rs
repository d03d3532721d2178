use chrono::NaiveDate;
use orbas_oltp::model::{AlertEventId, AlertId};
use orbas_oltp::repo::alerts::PendingEvent;

use super::*;

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn window(period: Period, trailing: Option<u32>, today: &str, fiscal: u32) -> (String, String) {
    let w = Window::of(period, trailing, day(today), fiscal);
    (w.from.to_string(), w.until.to_string())
}

#[test]
fn windows_contain_today() {
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(window(Period::Day, None, "2026-12-06", 1), s("2026-12-06", "2026-12-07"));
    // 2026-12-06 is a Sunday: its ISO week began on Monday the 30th of November.
    assert_eq!(window(Period::Week, None, "2026-12-06", 1), s("2026-11-30", "2026-12-07"));
    assert_eq!(window(Period::Month, None, "2026-12-06", 1), s("2026-12-01", "2027-01-01"));
    assert_eq!(window(Period::Quarter, None, "2026-12-06", 1), s("2026-10-01", "2027-01-01"));
    assert_eq!(window(Period::Quarter, None, "2026-01-01", 1), s("2026-01-01", "2026-04-01"));
    // A fiscal year from February: quarters start in Feb, May, Aug, Nov.
    assert_eq!(window(Period::FiscalQuarter, None, "2026-12-06", 2), s("2026-11-01", "2027-02-01"));
    assert_eq!(window(Period::FiscalQuarter, None, "2027-01-31", 2), s("2026-11-01", "2027-02-01"));
    assert_eq!(window(Period::FiscalQuarter, None, "2026-12-06", 1), s("2026-10-01", "2027-01-01"));
    assert_eq!(window(Period::TrailingDays, Some(30), "2026-12-06", 1), s("2026-11-07", "2026-12-07"));
    assert_eq!(Window::of(Period::Month, None, day("2026-12-06"), 1).key(), "2026-12-01..2027-01-01");
}

fn spec() -> AlertSpec {
    serde_json::from_value(serde_json::json!({
        "name": "Under quota", "kpi": "bookings", "group_by": "owner", "period": "fiscal_quarter",
        "comparison": "below", "goal": {"kind": "sql", "sql": "SELECT user_id AS owner, amount AS goal FROM quotas \
            WHERE period_start <= :from AND :from < period_end"},
        "factor": 0.8, "recipients": ["a@example.com"], "cron": "0 8 * * 1-5"
    }))
    .expect("a spec")
}

fn fields(s: &AlertSpec) -> Vec<String> {
    s.problems().into_iter().map(|p| p.field).collect()
}

#[test]
fn specs_name_their_problems_by_field() {
    let good = spec();
    assert_eq!(fields(&good), Vec::<String>::new());
    assert_eq!((good.timezone.as_str(), good.missing_as_zero, good.is_active), ("UTC", true, true));
    let bad = AlertSpec {
        name: " ".into(),
        kpi: "Not A Key".into(),
        trailing_days: Some(3),
        factor: 0.0,
        goal: Goal::Sql { sql: "DELETE FROM quotas".into() },
        recipients: vec!["nobody".into()],
        cron: "61 * * * *".into(),
        ..good.clone()
    };
    assert_eq!(
        fields(&bad),
        ["name", "kpi", "trailing_days", "factor", "goal.sql", "recipients[0]", "cron"].map(String::from)
    );
    let trailing = AlertSpec { period: Period::TrailingDays, trailing_days: None, ..good.clone() };
    assert_eq!(fields(&trailing), ["trailing_days"]);
    let constant = AlertSpec { goal: Goal::Constant { value: f64::NAN }, ..good };
    assert_eq!(fields(&constant), ["goal.value"]);
}

#[test]
fn patches_replace_what_they_send() {
    let patch: AlertPatch =
        serde_json::from_value(serde_json::json!({"factor": 1.2, "group_by": null})).expect("a patch");
    let after = patch.apply(spec());
    assert_eq!((after.factor, after.group_by.clone(), after.name.as_str()), (1.2, None, "Under quota"));
    let untouched: AlertPatch = serde_json::from_value(serde_json::json!({})).expect("an empty patch");
    assert_eq!(untouched.apply(spec()), spec());
    assert!(serde_json::from_value::<AlertPatch>(serde_json::json!({"colour": "red"})).is_err());
}

#[test]
fn goal_queries_get_the_window() {
    let sql = bind_window("SELECT 1 AS goal WHERE :from < :until", day("2026-10-01"), day("2027-01-01"));
    assert_eq!(sql, "SELECT 1 AS goal WHERE DATE '2026-10-01' < DATE '2027-01-01'");
}

fn event(alert: AlertId, group: &str, value: f64, goal: f64) -> PendingEvent {
    PendingEvent {
        id: AlertEventId::new(),
        alert_id: alert,
        email: "a@example.com".into(),
        group_key: group.into(),
        period: "2026-10-01..2027-01-01".into(),
        value,
        goal,
        attempts: 0,
        alert_name: "Under quota".into(),
        group_by: Some("owner".into()),
        comparison: "below".into(),
        kpi_name: "Bookings".into(),
        kpi_unit: "currency".into(),
    }
}

#[test]
fn digests_list_every_breach_in_the_kpis_unit() {
    let a = AlertId::new();
    let names = std::collections::BTreeMap::from([("u1".to_owned(), "Ada <Lovelace>".to_owned())]);
    let d = digest::render(&[event(a, "u1", 1500.0, 8000.0), event(a, "u2", 0.0, 4000.0)], &names);
    assert_eq!(d.subject, "Alert: Under quota (2 new breaches)");
    assert_eq!(
        d.text,
        "Alert: Under quota (2 new breaches)\n\n== Under quota\nBookings below goal, 2026-10-01 to 2026-12-31\n\
         group\tvalue\tgoal\tgap\nAda <Lovelace> (u1)\t1,500\t8,000\t-6,500\nu2\t0\t4,000\t-4,000\n\n"
    );
    assert!(d.html.contains("Ada &lt;Lovelace&gt; (u1)") && d.html.matches("<table").count() == 1, "{}", d.html);
    let two = digest::render(&[event(a, "u1", 1.0, 2.0), event(AlertId::new(), "u1", 1.0, 2.0)], &names);
    assert_eq!(two.subject, "KPI alerts: 2 new breaches in 2 alerts");
}
