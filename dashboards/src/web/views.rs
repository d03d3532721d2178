//! View models: CRM records turned into display strings (labels, money, dates, factor bars), so the
//! templates hold no logic beyond loops and conditions.

use chrono::{DateTime, Utc};
use orbas_oltp::model::EntityType;
use orbas_oltp::repo::accounts::Account;
use orbas_oltp::repo::intelligence::EntityScore;
use orbas_oltp::repo::opportunities::{Opportunity, StageChange};
use orbas_oltp::repo::recommendations::Recommendation;
use orbas_oltp::repo::workflows::TimelineEvent;
use rust_decimal::Decimal;
use serde_json::Value;

/// A labelled value of a record page.
#[derive(Debug, Clone)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    /// A link for the value (the account of a deal).
    pub href: Option<String>,
}

fn field(label: &'static str, value: impl Into<String>) -> Field {
    Field { label, value: value.into(), href: None }
}

fn or_dash(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or_else(|| "—".to_owned())
}

/// `snake_case` wire values as words.
fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An amount with two decimals and its currency.
pub fn money(amount: Decimal, currency: &str) -> String {
    format!("{:.2} {currency}", amount.round_dp(2))
}

/// The page of a record the UI has one for.
pub fn record_href(entity_type: EntityType, id: uuid::Uuid) -> Option<String> {
    match entity_type {
        EntityType::Account => Some(format!("/ui/accounts/{id}")),
        EntityType::Opportunity => Some(format!("/ui/opportunities/{id}")),
        _ => None,
    }
}

pub fn account_fields(a: &Account) -> Vec<Field> {
    vec![
        field("Domain", or_dash(a.domain.clone())),
        field("Industry", or_dash(a.industry.map(|i| words(i.as_str())))),
        field("Segment", or_dash(a.segment.map(|s| words(s.as_str())))),
        field("Size", or_dash(a.size.map(|s| words(s.as_str())))),
        field("Lifecycle stage", words(a.lifecycle_stage.as_str())),
        field("Annual revenue", or_dash(a.annual_revenue.map(|r| money(r, &a.currency)))),
        field("Billing country", or_dash(a.billing_country.clone())),
        field("Last activity", or_dash(a.last_activity_at.map(when))),
        field("Created", when(a.created_at)),
    ]
}

/// A deal's fields; `account_name` labels the link to its account (`None`: the viewer may not open it).
pub fn opportunity_fields(o: &Opportunity, account_name: Option<&str>, stage_name: &str) -> Vec<Field> {
    let account = match account_name {
        Some(name) => {
            Field { label: "Account", value: name.to_owned(), href: Some(format!("/ui/accounts/{}", o.account_id.0)) }
        }
        None => field("Account", "—"),
    };
    vec![
        account,
        field("Stage", stage_name),
        field("Status", words(o.status.as_str())),
        field("Amount", money(o.amount, &o.currency)),
        field("Probability", format!("{}%", o.probability.round_dp(0))),
        field("Forecast category", words(o.forecast_category.as_str())),
        field("Kind", words(o.kind.as_str())),
        field("Close date", o.close_date.to_string()),
        field("Next step", or_dash(o.next_step.clone())),
        field("Lost reason", or_dash(o.lost_reason.clone())),
    ]
}

/// One row of a record's history.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub at: String,
    pub kind: String,
    pub title: String,
    pub detail: String,
}

impl From<&TimelineEvent> for TimelineRow {
    fn from(e: &TimelineEvent) -> Self {
        TimelineRow { at: when(e.at), kind: words(&e.kind), title: e.title.clone(), detail: or_dash(e.detail.clone()) }
    }
}

impl TimelineRow {
    /// A deal's stage change; `stage` names the stage it moved to, `currency` is the deal's.
    pub fn stage_change(c: &StageChange, stage: &str, currency: &str) -> Self {
        TimelineRow {
            at: when(c.changed_at),
            kind: "stage change".to_owned(),
            title: stage.to_owned(),
            detail: money(c.amount, currency),
        }
    }
}

/// One factor behind a score.
#[derive(Debug, Clone)]
pub struct Factor {
    pub feature: String,
    pub value: String,
    /// Signed contribution to the log-odds, two decimals.
    pub contribution: String,
    pub raises: bool,
}

/// A model's latest score of a record, with its factors.
#[derive(Debug, Clone)]
pub struct ScoreView {
    pub model: String,
    pub percent: String,
    pub version: i32,
    pub predicted_at: String,
    pub factors: Vec<Factor>,
    /// `[[feature, contribution], …]` for the chart (the table above it is the accessible version).
    pub chart: String,
}

fn factor(v: &Value) -> Option<(Factor, f64)> {
    let feature = v.get("feature")?.as_str()?.to_owned();
    let c = v.get("contribution")?.as_f64()?;
    let value = match v.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => {
            n.as_f64().map_or_else(|| n.to_string(), |x| format!("{}", (x * 100.0).round() / 100.0))
        }
        Some(Value::Bool(b)) => b.to_string(),
        _ => "—".to_owned(),
    };
    Some((Factor { feature: words(&feature), value, contribution: format!("{c:+.2}"), raises: c >= 0.0 }, c))
}

impl From<&EntityScore> for ScoreView {
    fn from(s: &EntityScore) -> Self {
        let parsed: Vec<(Factor, f64)> = s.explanation.as_array().into_iter().flatten().filter_map(factor).collect();
        let chart: Vec<Value> = parsed.iter().map(|(f, c)| serde_json::json!([f.feature, c])).collect();
        ScoreView {
            model: words(&s.model),
            percent: format!("{:.0}%", s.score * 100.0),
            version: s.version,
            predicted_at: when(s.predicted_at),
            factors: parsed.into_iter().map(|(f, _)| f).collect(),
            chart: Value::Array(chart).to_string(),
        }
    }
}

/// A recommendation in the inbox or on a record page.
#[derive(Debug, Clone)]
pub struct RecView {
    pub id: String,
    pub title: String,
    pub rationale: String,
    pub action: String,
    pub score: String,
    pub expected_value: Option<String>,
    pub expires: Option<String>,
    pub record_href: Option<String>,
    pub record_kind: String,
}

impl From<&Recommendation> for RecView {
    fn from(r: &Recommendation) -> Self {
        RecView {
            id: r.id.0.to_string(),
            title: r.title.clone(),
            rationale: r.rationale.clone(),
            action: words(r.action.as_str()),
            score: format!("{:.0}", r.score * 100.0),
            expected_value: r.expected_value.map(|v| money(v, r.currency.as_deref().unwrap_or(""))),
            expires: r.expires_at.map(when),
            record_href: record_href(r.entity_type, r.entity_id),
            record_kind: words(r.entity_type.as_str()),
        }
    }
}

/// One search result.
#[derive(Debug, Clone)]
pub struct HitView {
    pub kind: String,
    pub title: String,
    /// Escaped by the search index except its `<b>` marks.
    pub snippet_html: String,
    pub href: Option<String>,
}

impl HitView {
    pub fn new(kind: &str, id: &str, title: &str, snippet_html: &str) -> Self {
        let href = match kind {
            "account" => Some(format!("/ui/accounts/{id}")),
            "opportunity" => Some(format!("/ui/opportunities/{id}")),
            _ => None,
        };
        HitView { kind: words(kind), title: title.to_owned(), snippet_html: snippet_html.to_owned(), href }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_become_signed_rows_and_chart_data() {
        let s = EntityScore {
            model: "deal_win".into(),
            task: "classification".into(),
            version: 3,
            version_status: "active".into(),
            prediction_id: orbas_oltp::model::PredictionId(uuid::Uuid::nil()),
            score: 0.734,
            label: None,
            explanation: serde_json::json!([
                {"feature": "days_in_stage", "value": 41.456, "contribution": -0.8},
                {"feature": "champion", "value": "yes", "contribution": 0.5},
                {"no": "feature"}
            ]),
            predicted_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let v = ScoreView::from(&s);
        assert_eq!((v.model.as_str(), v.percent.as_str()), ("deal win", "73%"));
        let rows: Vec<_> = v
            .factors
            .iter()
            .map(|f| (f.feature.as_str(), f.value.as_str(), f.contribution.as_str(), f.raises))
            .collect();
        assert_eq!(rows, [("days in stage", "41.46", "-0.80", false), ("champion", "yes", "+0.50", true)]);
        assert_eq!(v.chart, r#"[["days in stage",-0.8],["champion",0.5]]"#);
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(Decimal::new(12345, 1), "EUR"), "1234.50 EUR");
        assert_eq!(money(Decimal::new(1, 3), "USD"), "0.00 USD");
    }
}
