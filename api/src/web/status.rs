//! `GET /ui/status`: the status page — [`crate::routes::status::SystemStatus`] as people read it.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use orbas_dashboards::web::{Nav, StatusPage, StatusPart};

use super::session::UiUser;
use super::{HtmlError, page};
use crate::routes::status::{self, SystemStatus, bytes};
use crate::state::AppState;

pub(super) async fn status(State(state): State<AppState>, user: UiUser) -> Result<Response, HtmlError> {
    status::may_see(&user.auth.principal)?;
    let s = status::gather(&state, &user.auth.principal).await;
    page(&view(user.layout("Status", Nav::Status), &s))
}

fn view(layout: orbas_dashboards::web::Layout, s: &SystemStatus) -> StatusPage {
    let now = s.checked_at;
    let when = |t: Option<DateTime<Utc>>| t.map_or_else(|| "never".to_owned(), |t| ago(now, t));
    let mut parts = Vec::new();

    let d = &s.database;
    let mut figures = Vec::new();
    if let Some(server) = &d.server {
        figures.push(("Version".into(), server.version.clone()));
        figures.push(("WAL position".into(), server.wal_lsn.clone()));
    }
    parts.push(part("database", "Database", d.health, &d.notes, figures, None));

    let c = &s.change_capture;
    let slots = (!c.slots.is_empty()).then(|| {
        let head = ["Slot", "Consumer", "Behind", "WAL"].map(str::to_owned).to_vec();
        let rows = c
            .slots
            .iter()
            .map(|sl| {
                vec![
                    sl.name.clone(),
                    if sl.active { "connected".into() } else { "none".into() },
                    sl.lag_bytes.map_or_else(|| "—".into(), bytes),
                    sl.wal_status.clone().unwrap_or_else(|| "—".into()),
                ]
            })
            .collect();
        (head, rows)
    });
    parts.push(part("change-capture", "Change stream", c.health, &c.notes, Vec::new(), slots));

    let l = &s.lake;
    let figures = if l.health == status::Health::Off {
        Vec::new()
    } else {
        vec![
            ("CRM tables (silver)".into(), l.silver_tables.to_string()),
            ("KPI tables (gold)".into(), l.gold_tables.to_string()),
            ("Last change landed".into(), when(l.silver_newest_commit)),
            ("Last KPI refresh".into(), when(l.gold_newest_commit)),
        ]
    };
    parts.push(part("lake", "Lake", l.health, &l.notes, figures, None));

    let x = &s.search;
    let mut figures = Vec::new();
    if let Some(n) = x.documents {
        figures.push(("Documents".into(), n.to_string()));
        figures.push(("Semantic search".into(), if x.semantic { "on".into() } else { "off (keyword only)".into() }));
    }
    parts.push(part("search", "Search", x.health, &x.notes, figures, None));

    let m = &s.models;
    let models = (!m.active.is_empty()).then(|| {
        let head = ["Model", "Version", "Trained", "Rows"].map(str::to_owned).to_vec();
        let rows = m
            .active
            .iter()
            .map(|a| {
                vec![
                    a.key.clone(),
                    a.version.to_string(),
                    when(a.trained_at),
                    a.training_rows.map_or_else(|| "—".into(), |r| r.to_string()),
                ]
            })
            .collect();
        (head, rows)
    });
    parts.push(part("models", "Models", m.health, &m.notes, Vec::new(), models));

    let r = &s.deliveries;
    let mut figures = Vec::new();
    if let Some(b) = &r.backlog {
        figures.push(("Report copies waiting".into(), b.reports_pending.to_string()));
        figures.push(("Report copies failed (24 h)".into(), b.reports_failed_24h.to_string()));
        figures.push(("Alert digests waiting".into(), b.alerts_pending.to_string()));
        figures.push(("Alert digests failed (24 h)".into(), b.alerts_failed_24h.to_string()));
    }
    parts.push(part("deliveries", "Reports and alerts", r.health, &r.notes, figures, None));

    StatusPage {
        layout,
        health: s.health.as_str(),
        checked_at: s.checked_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        parts,
    }
}

fn part(
    id: &'static str,
    name: &'static str,
    health: status::Health,
    notes: &[String],
    figures: Vec<(String, String)>,
    table: Option<(Vec<String>, Vec<Vec<String>>)>,
) -> StatusPart {
    StatusPart { id, name, health: health.as_str(), notes: notes.to_vec(), figures, table }
}

/// `just now`, `12 s ago`, `5 min ago`, `3 h ago`, `2 days ago` (and the time itself).
fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds();
    let rel = match s {
        ..=1 => "just now".to_owned(),
        2..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    };
    format!("{rel} ({})", t.format("%Y-%m-%d %H:%M UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_sensible_unit() {
        let now = Utc::now();
        let at = |secs| ago(now, now - chrono::TimeDelta::seconds(secs));
        assert!(at(0).starts_with("just now"));
        assert!(at(45).starts_with("45 s ago"));
        assert!(at(600).starts_with("10 min ago"));
        assert!(at(5 * 3600).starts_with("5 h ago"));
        assert!(at(3 * 86_400).starts_with("3 days ago"));
    }
}
