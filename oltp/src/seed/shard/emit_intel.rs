//! Rows of analytics and intelligence: product-usage and marketing events, the scores of the baseline
//! models (computed from observable columns only), next-best-action recommendations with the reps'
//! feedback, and the shard's audit trail.

use rand::Rng;
use serde_json::json;

use super::{Shard, SubStatus};
use crate::Result;
use crate::model::{LeadSource, LeadStatus, OpportunityStatus};
use crate::seed::catalog::{M_CHURN, M_DEAL, M_LEAD, M_NBA, STAGE_PROBABILITY};
use crate::seed::csv::Emitter;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{self, SeedRng, between, chance, hex_token, lognormal, normal, pick, poisson, sigmoid, uniform};
use crate::seed::schema::*;
use crate::seed::text::AREAS;
use crate::seed::time::{DAY, HOUR, MINUTE, Ms, business_time};

pub(super) fn emit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    analytics(em, c, s)?;
    intelligence(em, c, s)?;
    audit(em, c, s)
}

const PRODUCT_EVENTS: &[(&str, f64)] = &[
    ("app.login", 0.3),
    ("report.viewed", 0.2),
    ("dashboard.viewed", 0.15),
    ("record.created", 0.15),
    ("export.csv", 0.05),
    ("integration.sync_completed", 0.1),
    ("ai.assistant.query", 0.05),
];

fn analytics(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "analytics_events");
    let mut ids = c.t.shard_ids(s.ix, "analytics_events");
    em.begin(ANALYTICS_EVENTS);
    // Product usage in the last 60 days of each subscription's life: volume follows active seats.
    for sub in s.subs.iter().filter(|x| !x.addon) {
        let end = sub.end().unwrap_or(c.t.now).min(c.t.now);
        let start = sub.start.max(end - 60 * DAY);
        if end <= start {
            continue;
        }
        let a = &s.accounts[sub.account];
        let active = sub.active_seats.unwrap_or(0) as f64;
        let n = poisson(&mut rng, (3.0 + 0.5 * active).min(60.0) * (end - start) as f64 / (60 * DAY) as f64);
        for _ in 0..n {
            let raw = start + rng.random_range(0..(end - start));
            let at = business_time(&mut rng, raw, a.region).clamp(start, end);
            let kind = rng::weighted(&mut rng, PRODUCT_EVENTS);
            let ci = rng.random_range(0..a.contacts.len().max(1));
            let contact = a.contacts.get(ci).filter(|&&x| s.contacts[x].created <= at);
            let props = json!({
                "feature": pick(&mut rng, AREAS).0, "plan": sub.plan_name, "client": pick(&mut rng, &["web", "ios", "android"]),
                "duration_ms": lognormal(&mut rng, 850.0, 0.7).round() as i64,
            });
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .text(kind)
                .text("product")
                .null()
                .uuid(a.id)
                .opt_uuid(contact.map(|&x| s.contacts[x].id))
                .json(&props)
                .ts(at)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    // Marketing touches on prospects' contacts, and a few CRM events by reps.
    for ct in &s.contacts {
        if !chance(&mut rng, 0.2) {
            continue;
        }
        let a = &s.accounts[ct.account];
        for _ in 0..between(&mut rng, 1, 4) {
            let at = ct.created + rng.random_range(0..(c.t.now - ct.created).max(1));
            let (kind, source, props) = if chance(&mut rng, 0.5) {
                (
                    "web.page_view",
                    "web",
                    json!({"path": pick(&mut rng, &["/pricing", "/product/forecasting", "/customers", "/security"])}),
                )
            } else {
                (
                    "email.opened",
                    "email",
                    json!({"campaign": "newsletter", "client": pick(&mut rng, &["gmail", "outlook", "apple_mail"])}),
                )
            };
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .text(kind)
                .text(source)
                .null()
                .uuid(a.id)
                .uuid(ct.id)
                .json(&props)
                .ts(at)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    for a in &s.accounts {
        if !chance(&mut rng, 0.05) {
            continue;
        }
        let at = (a.created + between(&mut rng, HOUR, 90 * DAY)).min(c.t.now - MINUTE);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .text("crm.report.exported")
            .text("crm")
            .uuid(c.org.users[a.owner].id)
            .uuid(a.id)
            .null()
            .json(&json!({"report": "account_overview", "format": "csv"}))
            .ts(at)
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}

/// A score and its explanation, computed the way a baseline model would from observable fields.
struct Scored {
    entity_type: &'static str,
    entity: uuid::Uuid,
    model: usize,
    score: f64,
    label: &'static str,
    explanation: serde_json::Value,
    owner: usize,
    /// (action, title, rationale) if the score warrants an action.
    action: Option<(&'static str, String, String)>,
}

fn days_since(now: Ms, t: Option<Ms>) -> i64 {
    t.map_or(365, |t| (now - t) / DAY)
}

fn score_opps(c: &TenantCtx, s: &Shard, out: &mut Vec<Scored>) {
    let mut recent = vec![0i64; s.opps.len()];
    for t in s.touches.iter().filter(|t| t.at > c.t.now - 30 * DAY) {
        if let Some(o) = t.opp {
            recent[o] += 1;
        }
    }
    for (i, o) in s.opps.iter().enumerate().filter(|(_, o)| o.status == OpportunityStatus::Open) {
        let prob = STAGE_PROBABILITY[usize::from(o.stage())];
        let idle = days_since(c.t.now, o.last_activity);
        let (a, b, d) = (0.035 * prob as f64, 0.25 * recent[i].min(8) as f64, -0.04 * idle.min(60) as f64);
        let score = sigmoid(-2.2 + a + b + d);
        let action = if score < 0.35 && idle > 14 {
            Some((
                "follow_up",
                format!("Re-engage {}", o.name),
                format!("No activity for {idle} days in stage {}.", c.cat.stages[usize::from(o.stage())].name),
            ))
        } else if score > 0.7 {
            Some((
                "meeting",
                format!("Book a closing call for {}", o.name),
                format!("{} activities in the last 30 days.", recent[i]),
            ))
        } else {
            None
        };
        out.push(Scored {
            entity_type: "opportunity",
            entity: o.id,
            model: M_DEAL,
            score,
            label: if score >= 0.5 { "likely_win" } else { "at_risk" },
            explanation: json!([
                {"feature": "stage_probability", "value": prob, "contribution": (a * 1000.0).round() / 1000.0},
                {"feature": "activities_30d", "value": recent[i], "contribution": (b * 1000.0).round() / 1000.0},
                {"feature": "days_since_activity", "value": idle, "contribution": (d * 1000.0).round() / 1000.0},
            ]),
            owner: o.owner,
            action,
        });
    }
}

fn score_leads(c: &TenantCtx, s: &Shard, out: &mut Vec<Scored>) {
    for l in s.leads.iter().filter(|l| !matches!(l.status, LeadStatus::Converted | LeadStatus::Unqualified)) {
        let idle = days_since(c.t.now, l.last_activity);
        let src = match l.source {
            LeadSource::Referral | LeadSource::Partner => 1.0,
            LeadSource::Event => 0.5,
            LeadSource::PaidAds | LeadSource::Outbound => -0.4,
            _ => 0.0,
        };
        let score = sigmoid(-1.6 + src + if idle <= 14 { 1.2 } else { -0.02 * idle.min(90) as f64 });
        let action = (score > 0.5).then(|| {
            (
                "call",
                format!("Call {} {} ({})", l.first, l.last, l.company),
                format!("Engaged {idle} days ago via {}.", l.source.as_str()),
            )
        });
        out.push(Scored {
            entity_type: "lead",
            entity: l.id,
            model: M_LEAD,
            score,
            label: match score { x if x >= 0.6 => "hot", x if x >= 0.3 => "warm", _ => "cold" },
            explanation: json!([{"feature": "source", "value": l.source.as_str(), "contribution": src}, {"feature": "days_since_activity", "value": idle}]),
            owner: l.owner,
            action,
        });
    }
}

fn score_subs(c: &TenantCtx, s: &Shard, out: &mut Vec<Scored>) {
    for sub in s
        .subs
        .iter()
        .filter(|x| !x.addon && matches!(x.status, SubStatus::Active | SubStatus::PastDue | SubStatus::Trialing))
    {
        let seats = sub.seats_at(c.t.now).max(1);
        let usage = sub.active_seats.unwrap_or(0) as f64 / seats as f64;
        let tickets = s.tickets.iter().filter(|t| t.account == sub.account && t.created > c.t.now - 90 * DAY).count();
        let past_due = sub.status == SubStatus::PastDue;
        let score = sigmoid(-1.0 - 3.0 * (usage - 0.5) + 0.4 * tickets as f64 + if past_due { 1.0 } else { 0.0 });
        let name = &s.accounts[sub.account].name;
        let action = if score > 0.6 {
            Some((
                "renewal_outreach",
                format!("Check in with {name}"),
                format!("Usage at {:.0}% of seats, {tickets} tickets in 90 days.", usage * 100.0),
            ))
        } else if usage > 0.9 {
            Some(("upsell", format!("Offer more seats to {name}"), format!("{:.0}% of seats active.", usage * 100.0)))
        } else {
            None
        };
        out.push(Scored {
            entity_type: "subscription",
            entity: sub.id,
            model: M_CHURN,
            score,
            label: match score { x if x >= 0.6 => "high_risk", x if x >= 0.3 => "medium_risk", _ => "low_risk" },
            explanation: json!([{"feature": "seat_usage", "value": (usage * 100.0).round() / 100.0}, {"feature": "tickets_90d", "value": tickets}, {"feature": "past_due", "value": past_due}]),
            owner: s.accounts[sub.account].owner,
            action,
        });
    }
}

fn intelligence(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "predictions");
    let mut ids = c.t.shard_ids(s.ix, "predictions");
    let mut scored = Vec::new();
    score_opps(c, s, &mut scored);
    score_leads(c, s, &mut scored);
    score_subs(c, s, &mut scored);
    let mut recs = Vec::new();
    let mut first = None;
    em.begin(PREDICTIONS);
    for p in &scored {
        let at = c.t.now - between(&mut rng, HOUR, 2 * DAY);
        let id = ids.at_millis(at as u64);
        em.row()
            .uuid(c.t.id)
            .uuid(id)
            .uuid(c.cat.model_versions[p.model])
            .text(p.entity_type)
            .uuid(p.entity)
            .float((p.score * 10_000.0).round() / 10_000.0)
            .text(p.label)
            .json(&p.explanation)
            .ts(at)
            .ts(at)
            .ts(at)
            .end()?;
        first = first.or(Some((p, id, at)));
        if p.action.is_some() && chance(&mut rng, 0.5) {
            recs.push((p, id, at));
        }
    }
    // Every tenant gets at least one recommendation (tiny tenants may have no actionable score).
    if let (0, true, Some(f)) = (s.ix, recs.is_empty(), first) {
        recs.push(f);
    }
    em.finish()?;
    recommendations(em, c, s, &mut rng, &recs)
}

/// How far back the reps' answered next-best actions go.
const HISTORY_DAYS: i64 = 180;

/// A next-best action of the past months, long answered or expired.
struct Past {
    entity_type: &'static str,
    entity: uuid::Uuid,
    owner: usize,
    action: &'static str,
    title: String,
    created: Ms,
}

/// The actions reps were shown over the last [`HISTORY_DAYS`] days (up to three days ago) on the
/// shard's deals, leads and subscriptions while they were live: the feedback history the ranking's
/// acceptance model learns from. Which action a record got does not depend on how it ended.
fn history(c: &TenantCtx, s: &Shard) -> Vec<Past> {
    let mut rng = c.t.shard_rng(s.ix, "recommendation_history");
    let (from, until) = (c.t.now - HISTORY_DAYS * DAY, c.t.now - 3 * DAY);
    let mut out = Vec::new();
    let at = |rng: &mut SeedRng, lo: Ms, hi: Ms| {
        let (lo, hi) = (lo.max(from), hi.min(until));
        (lo < hi).then(|| between(rng, lo, hi))
    };
    for o in &s.opps {
        if !chance(&mut rng, 0.3) {
            continue;
        }
        if let Some(t) = at(&mut rng, o.created, o.closed_at().unwrap_or(c.t.now)) {
            let (action, title) = match rng.random_range(0..3) {
                0 => ("meeting", format!("Book a meeting on {}", o.name)),
                1 => ("follow_up", format!("Follow up on {}", o.name)),
                _ => ("send_quote", format!("Send a quote for {}", o.name)),
            };
            out.push(Past { entity_type: "opportunity", entity: o.id, owner: o.owner, action, title, created: t });
        }
    }
    for l in &s.leads {
        if !chance(&mut rng, 0.1) {
            continue;
        }
        if let Some(t) = at(&mut rng, l.created + DAY, l.created + 21 * DAY) {
            let action = pick(&mut rng, &["call", "email", "nurture"]);
            let title = format!("{} {} {} ({})", capitalised(action), l.first, l.last, l.company);
            out.push(Past { entity_type: "lead", entity: l.id, owner: l.owner, action, title, created: t });
        }
    }
    for sub in s.subs.iter().filter(|x| !x.addon) {
        if !chance(&mut rng, 0.2) {
            continue;
        }
        if let Some(t) = at(&mut rng, sub.start, sub.end().unwrap_or(c.t.now)) {
            let account = &s.accounts[sub.account];
            let (action, title) = if chance(&mut rng, 0.5) {
                ("renewal_outreach", format!("Check in with {}", account.name))
            } else {
                ("upsell", format!("Offer more seats to {}", account.name))
            };
            out.push(Past {
                entity_type: "subscription",
                entity: sub.id,
                owner: account.owner,
                action,
                title,
                created: t,
            });
        }
    }
    out
}

fn capitalised(action: &str) -> String {
    let mut chars = action.chars();
    chars.next().map_or(String::new(), |f| f.to_uppercase().chain(chars).collect())
}

/// How a rep answers an action: a status and, for a dismissal, its reason code.
///
/// Some actions rest on stale or wrong data whatever the rep thinks of the advice: [`STALE`] of them
/// are dismissed as already handled outside the CRM (two in three) or as not the rep's record. The rest
/// are accepted with log-odds `0.25 + habit + appeal` (a quarter of those already done), or dismissed
/// as not relevant — with the code or, as a rep may leave it out, without.
fn answer(rng: &mut SeedRng, habit: f64, action: &str) -> (&'static str, Option<&'static str>) {
    if chance(rng, STALE) {
        return ("dismissed", Some(if chance(rng, 2.0 / 3.0) { "already_handled" } else { "not_mine" }));
    }
    let accepts = chance(rng, sigmoid(0.25 + habit + appeal(action)));
    match (accepts, chance(rng, 0.25)) {
        (false, coded) => ("dismissed", (!coded).then_some("not_relevant")),
        (true, true) => ("done", None),
        (true, false) => ("accepted", None),
    }
}

/// The share of answered actions that rested on stale or wrong data (see [`answer`]).
const STALE: f64 = 0.15;

/// A rep's note beside a reason code, now and then.
fn note(rng: &mut SeedRng, code: Option<&str>) -> Option<&'static str> {
    let notes: &[&str] = match code {
        Some("already_handled") => &["Already in touch", "Spoke to them last week", "Meeting already booked"],
        Some("not_mine") => &["Wrong contact", "Belongs to the partner team", "Not in my territory"],
        _ => &["Not relevant", "Not a priority this quarter", "They are not ready"],
    };
    chance(rng, 0.4).then(|| pick(rng, notes))
}

/// One row of `recommendations` (it expires 14 days after it was made).
struct RecRow<'a> {
    id: uuid::Uuid,
    owner: usize,
    entity_type: &'static str,
    entity: uuid::Uuid,
    action: &'a str,
    title: &'a str,
    rationale: &'a str,
    score: f64,
    status: &'static str,
    snoozed: Option<Ms>,
    prediction: Option<uuid::Uuid>,
    created: Ms,
    updated: Ms,
}

impl RecRow<'_> {
    fn emit(&self, em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
        em.row()
            .uuid(c.t.id)
            .uuid(self.id)
            .uuid(c.org.users[self.owner].id)
            .text(self.entity_type)
            .uuid(self.entity)
            .text(self.action)
            .text(self.title)
            .text(self.rationale)
            .float((self.score * 1000.0).round() / 1000.0)
            .text(self.status)
            .opt_ts(self.snoozed)
            .ts(self.created + 14 * DAY)
            .uuid(c.cat.model_versions[M_NBA])
            .opt_uuid(self.prediction)
            .ts(self.created)
            .ts(self.updated)
            .end()
    }
}

fn recommendations(
    em: &mut Emitter<'_>,
    c: &TenantCtx,
    s: &Shard,
    rng: &mut SeedRng,
    recs: &[(&Scored, uuid::Uuid, Ms)],
) -> Result<()> {
    let mut ids = c.t.shard_ids(s.ix, "recommendations");
    // How reps answer: each has a habit (some take up most of what they are shown, some little of it)
    // and some action types are welcome more than others — what the acceptance model learns back.
    let mut habits = c.t.rng("rep_acceptance");
    let habit: Vec<f64> = c.org.users.iter().map(|_| 0.9 * normal(&mut habits)).collect();
    let mut feedback = Vec::new();
    em.begin(RECOMMENDATIONS);
    let mut past_rng = c.t.shard_rng(s.ix, "recommendation_history_answers");
    for p in history(c, s) {
        let (status, code) = if chance(&mut past_rng, 0.8) {
            answer(&mut past_rng, habit[p.owner], p.action)
        } else {
            ("expired", None)
        };
        let id = ids.at_millis(p.created as u64);
        let score = uniform(&mut past_rng, 0.3, 0.9);
        let answered = p.created + between(&mut past_rng, 10 * MINUTE, 2 * DAY);
        let row = RecRow {
            id,
            owner: p.owner,
            entity_type: p.entity_type,
            entity: p.entity,
            action: p.action,
            title: &p.title,
            rationale: "Flagged by the baseline model.",
            score,
            status,
            snoozed: None,
            prediction: None,
            created: p.created,
            updated: if status == "expired" { p.created + 14 * DAY } else { answered },
        };
        row.emit(em, c)?;
        let verdict = if status == "dismissed" { "dismiss" } else { "accept" };
        if status != "expired" {
            feedback.push((id, p.owner, verdict, code, None, answered));
        }
    }
    for (i, (p, prediction, at)) in recs.iter().enumerate() {
        let fallback = (
            "follow_up",
            format!("Review this {}", p.entity_type),
            "Flagged for review by the baseline model.".to_owned(),
        );
        let (action, title, rationale) = p.action.as_ref().unwrap_or(&fallback);
        let created = at + MINUTE;
        let (status, code) = if i == 0 {
            ("accepted", None)
        } else {
            match rng::weighted(rng, &[("open", 0.5), ("decided", 0.32), ("snoozed", 0.08), ("expired", 0.1)]) {
                "decided" => answer(rng, habit[p.owner], action),
                other => (other, None),
            }
        };
        let snoozed = (status == "snoozed").then_some(c.t.now + between(rng, DAY, 7 * DAY));
        let id = ids.at_millis(created as u64);
        let score = if p.model == M_DEAL && p.score < 0.5 { 1.0 - p.score } else { p.score };
        let row = RecRow {
            id,
            owner: p.owner,
            entity_type: p.entity_type,
            entity: p.entity,
            action,
            title,
            rationale,
            score,
            status,
            snoozed,
            prediction: Some(*prediction),
            created,
            updated: created,
        };
        row.emit(em, c)?;
        let verdict = match status {
            "accepted" | "done" => Some("accept"),
            "dismissed" => Some("dismiss"),
            "snoozed" => Some("snooze"),
            _ => None,
        };
        if let Some(v) = verdict {
            let answered = (created + between(rng, MINUTE, 6 * HOUR)).min(c.t.now - 1_000).max(created);
            feedback.push((id, p.owner, v, code, snoozed, answered));
        }
    }
    em.finish()?;
    let mut fb_ids = c.t.shard_ids(s.ix, "recommendation_feedback");
    em.begin(RECOMMENDATION_FEEDBACK);
    for (rec, user, verdict, code, snooze, at) in feedback {
        let reason = if verdict == "dismiss" { note(rng, code) } else { None };
        em.row()
            .uuid(c.t.id)
            .uuid(fb_ids.at_millis(at as u64))
            .uuid(rec)
            .uuid(c.org.users[user].id)
            .text(verdict)
            .opt_text(reason)
            .opt_ts(snooze)
            .ts(at)
            .ts(at)
            .opt_text(code)
            .end()?;
    }
    em.finish()
}

/// How welcome an action type is to reps (log-odds of accepting it, on top of the rep's habit).
fn appeal(action: &str) -> f64 {
    match action {
        "call" => 0.5,
        "renewal_outreach" => 0.4,
        "meeting" => 0.2,
        "email" => -0.3,
        "upsell" => -0.7,
        _ => 0.0,
    }
}

fn audit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "audit_logs");
    let mut ids = c.t.shard_ids(s.ix, "audit_logs");
    let mut row = |em: &mut Emitter<'_>,
                   rng: &mut SeedRng,
                   user: usize,
                   action: &str,
                   resource: &str,
                   id: uuid::Uuid,
                   changes: serde_json::Value,
                   at: Ms| {
        let key = (!c.org.api_keys.is_empty() && chance(rng, 0.05))
            .then(|| &c.org.api_keys[rng.random_range(0..c.org.api_keys.len())]);
        let key = key.filter(|k| k.created <= at);
        let actor = key.map_or(user, |k| k.user);
        let ip = format!("203.0.113.{}", rng.random_range(1..255));
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .uuid(c.org.users[actor].id)
            .opt_uuid(key.map(|k| k.id))
            .text(action)
            .text(resource)
            .uuid(id)
            .json(&changes)
            .text(&format!("req_{}", hex_token(rng, 8)))
            .text(&ip)
            .ts(at)
            .ts(at)
            .end()
    };
    em.begin(AUDIT_LOGS);
    for a in &s.accounts {
        let changes = json!({"name": {"before": null, "after": a.name}, "owner_id": {"before": null, "after": c.org.users[a.owner].id}});
        row(em, &mut rng, a.owner, "account.create", "accounts", a.id, changes, a.created)?;
    }
    for o in &s.opps {
        if let Some(closed) = o.closed_at() {
            let changes = json!({"status": {"before": "open", "after": o.status.as_str()}, "amount": {"before": null, "after": o.amount as f64 / 100.0}});
            row(em, &mut rng, o.owner, "opportunity.close", "opportunities", o.id, changes, closed)?;
        }
    }
    for l in &s.leads {
        if let Some((at, ..)) = l.converted {
            let changes = json!({"status": {"before": "qualified", "after": "converted"}});
            row(em, &mut rng, l.owner, "lead.convert", "leads", l.id, changes, at)?;
        }
    }
    em.finish()
}
