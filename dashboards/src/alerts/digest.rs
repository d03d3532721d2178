//! One recipient's digest: every pending breach, by alert — the group, the value, the goal and the gap,
//! in the KPI's unit — as an HTML mail with a plain-text alternative.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use orbas_oltp::repo::alerts::PendingEvent;

use crate::kpi::Unit;
use crate::report::{Rendered, escape, format_value};

fn unit_of(e: &PendingEvent) -> Unit {
    serde_json::from_value(serde_json::Value::String(e.kpi_unit.clone())).unwrap_or_default()
}

/// `2026-10-01..2027-01-01` as `2026-10-01 to 2026-12-31`.
fn period_label(key: &str) -> String {
    let Some((from, until)) = key.split_once("..") else { return key.to_owned() };
    let last = until.parse::<chrono::NaiveDate>().ok().and_then(|d| d.pred_opt());
    last.map_or_else(|| key.to_owned(), |l| format!("{from} to {l}"))
}

/// A group as the reader knows it: a person's name with their id, or the value itself.
fn group_label(e: &PendingEvent, names: &BTreeMap<String, String>) -> String {
    match (e.group_key.as_str(), names.get(&e.group_key)) {
        ("", _) => "total".to_owned(),
        (k, Some(name)) => format!("{name} ({k})"),
        (k, None) => k.to_owned(),
    }
}

fn signed(v: f64, unit: Unit) -> String {
    let shown = format_value(v, unit);
    if v > 0.0 { format!("+{shown}") } else { shown }
}

/// The digest of `events` (one recipient's, ordered by alert), people named from `names`.
pub(super) fn render(events: &[PendingEvent], names: &BTreeMap<String, String>) -> Rendered {
    let mut alerts: Vec<(&PendingEvent, Vec<&PendingEvent>)> = Vec::new();
    for e in events {
        match alerts.last_mut() {
            Some((first, list)) if first.alert_id == e.alert_id => list.push(e),
            _ => alerts.push((e, vec![e])),
        }
    }
    let subject = match alerts.as_slice() {
        [(a, list)] => format!("Alert: {} ({} new breach{})", a.alert_name, list.len(), plural(list.len())),
        _ => format!("KPI alerts: {} new breach{} in {} alerts", events.len(), plural(events.len()), alerts.len()),
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{s}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;color:#1a1a1a\"><h1>{s}</h1>",
        s = escape(&subject)
    );
    let mut text = format!("{subject}\n\n");
    for (a, list) in &alerts {
        let unit = unit_of(a);
        let _ = write!(html, "<section><h2>{}</h2>", escape(&a.alert_name));
        let _ = writeln!(text, "== {}", a.alert_name);
        let mut period = "";
        for e in list {
            if e.period != period {
                period = &e.period;
                let what = format!("{} {} goal, {}", e.kpi_name, e.comparison, period_label(period));
                let _ = write!(
                    html,
                    "<p>{}</p><table style=\"border-collapse:collapse\"><thead><tr>{}</tr></thead><tbody>",
                    escape(&what),
                    ["Group", "Value", "Goal", "Gap"]
                        .iter()
                        .map(|h| format!("<th scope=\"col\" style=\"text-align:left;padding:2px 8px\">{h}</th>"))
                        .collect::<String>()
                );
                let _ = writeln!(text, "{what}\ngroup\tvalue\tgoal\tgap");
            }
            let cells = [
                group_label(e, names),
                format_value(e.value, unit),
                format_value(e.goal, unit),
                signed(e.value - e.goal, unit),
            ];
            html.push_str("<tr>");
            for c in &cells {
                let _ = write!(html, "<td style=\"padding:2px 8px\">{}</td>", escape(c));
            }
            html.push_str("</tr>");
            let _ = writeln!(text, "{}", cells.join("\t"));
            let next_differs = list.iter().skip_while(|x| x.id != e.id).nth(1).is_none_or(|n| n.period != e.period);
            if next_differs {
                html.push_str("</tbody></table>");
            }
        }
        html.push_str("</section>");
        text.push('\n');
    }
    html.push_str("</body></html>");
    Rendered { subject, html, text, attachments: Vec::new(), inline: Vec::new() }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "es" }
}
