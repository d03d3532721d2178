//! Scheduled reports: what a report is (a dashboard, filters, a cron schedule in a time zone,
//! recipients, a format), how one recipient's copy is rendered — under that recipient's permissions,
//! through [`Viewer`] — and how it is mailed.
//!
//! Formats: `html` puts the dashboard in the mail body (tiles with their change, tables of every other
//! widget); `csv` attaches one RFC 4180 file per widget; `xlsx` one workbook with a sheet per widget.
//! `pdf` attaches the whole dashboard printed by headless Chromium ([`Renderer`]) — the web UI's own
//! charts and tables. Every format also carries the HTML summary in the body, so a mail is readable
//! without opening an attachment; with a renderer, its charts are in it as inline PNG images
//! (`multipart/related`, `cid:` links). A server without Chromium refuses `pdf` and mails tables only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::board::{self, DashboardFilters, WidgetData, WidgetKind};
use crate::catalog::StoredKpi;
use crate::engine::Engine;
use crate::error::{Error, FieldError, Result};
use crate::kpi::{Status, Unit};
use crate::render::Renderer;
use crate::store::StoredDashboard;
use crate::viewer::Viewer;
use crate::web::{PrintMode, PrintPage};

/// How a report is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Html,
    Pdf,
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// A cron schedule read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
}

impl Schedule {
    /// Five fields (minute hour day-of-month month day-of-week) or six with seconds first, in the IANA
    /// zone `tz`; problems as field errors on `cron` and `timezone`.
    pub fn parse(cron: &str, tz: &str) -> std::result::Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let parsed = parser
            .parse(cron.trim())
            .map_err(|e| {
                problems.push(FieldError { field: "cron".into(), message: format!("not a cron schedule: {e}") })
            })
            .ok();
        let zone = Tz::from_str(tz.trim())
            .map_err(|_| {
                problems
                    .push(FieldError { field: "timezone".into(), message: format!("{tz:?} is not an IANA time zone") })
            })
            .ok();
        match (parsed, zone) {
            (Some(cron), Some(tz)) if problems.is_empty() => Ok(Schedule { cron, tz }),
            _ => Err(problems),
        }
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|n| n.with_timezone(&Utc))
    }
}

/// A report as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    pub name: String,
    pub dashboard_id: orbas_oltp::model::DashboardId,
    /// Five fields (`0 8 * * 1`: Mondays at 08:00) or six with seconds first.
    pub cron: String,
    /// IANA time zone the schedule is read in (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    /// E-mail addresses of the tenant's active users; each gets the dashboard as they may see it.
    pub recipients: Vec<String>,
    pub format: Format,
    /// The dashboard filters to compute with (default: the dashboard's own).
    #[serde(default)]
    pub filters: Option<DashboardFilters>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}

const MAX_RECIPIENTS: usize = 50;

impl ReportSpec {
    /// Shape problems (recipients' existence is checked against the tenant's users by the caller);
    /// `can_print`: whether the server has the renderer PDF needs.
    pub fn problems(&self, can_print: bool) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |f: &str, m: String| out.push(FieldError { field: f.to_owned(), message: m });
        if self.name.trim().is_empty() || self.name.chars().count() > 120 {
            bad("name", "1 to 120 characters".into());
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            bad("recipients", format!("1 to {MAX_RECIPIENTS} addresses"));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if r.parse::<lettre::Address>().is_err() {
                bad(&format!("recipients[{i}]"), format!("{r:?} is not an e-mail address"));
            }
        }
        if self.format == Format::Pdf && !can_print {
            bad("format", NO_RENDERER.into());
        }
        if let Err(p) = Schedule::parse(&self.cron, &self.timezone) {
            out.extend(p);
        }
        out
    }
}

/// A file attached to a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One recipient's copy of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// Images the HTML body shows (`<img src="cid:…">`).
    pub inline: Vec<InlineImage>,
}

/// An image of the HTML body, referred to by its content id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// Without angle brackets: `chart-1@orbas`.
    pub cid: String,
    pub png: Vec<u8>,
}

/// A widget's data as the report shows it.
struct Section<'a> {
    widget: &'a crate::store::StoredWidget,
    title: &'a str,
    kind: WidgetKind,
    unit: Unit,
    data: WidgetData,
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value as a reader expects it for its unit.
pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{:.1} %", v * 100.0),
        Unit::Currency => group_thousands(v.round() as i64),
        Unit::Days => format!("{v:.1} d"),
        Unit::Ratio => format!("{v:.2}×"),
        Unit::Score => format!("{v:.2}"),
        Unit::Count if v.fract() == 0.0 => group_thousands(v as i64),
        Unit::Count => format!("{v:.2}"),
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
            },
        ),
        other => other.to_string(),
    }
}

/// RFC 4180: every field quoted when it holds a comma, quote or line break; CRLF line ends.
fn csv_of(columns: &[String], rows: &[Vec<serde_json::Value>]) -> Vec<u8> {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
    };
    let mut out = String::new();
    out.push_str(&columns.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|v| field(&cell(v))).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A file or sheet name from a title: letters, digits and `_`, unique among `taken`.
fn slug(title: &str, taken: &mut Vec<String>, max: usize) -> String {
    let mut s: String = title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if s.is_empty() {
        s = "widget".into();
    }
    s.truncate(max - 3);
    let mut candidate = s.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{s}_{n}");
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

fn xlsx_of(sections: &[Section<'_>]) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    let bold = XFormat::new().set_bold();
    let mut book = Workbook::new();
    let mut taken = Vec::new();
    let err = |e: rust_xlsxwriter::XlsxError| Error::Corrupt(format!("writing the workbook: {e}"));
    for s in sections {
        let sheet = book.add_worksheet();
        sheet.set_name(slug(s.title, &mut taken, 31)).map_err(err)?;
        let Some(t) = &s.data.table else {
            sheet.write_string(0, 0, s.data.error.as_deref().unwrap_or("no data")).map_err(err)?;
            continue;
        };
        for (c, name) in t.columns.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, name, &bold).map_err(err)?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let (r, c) = (r as u32 + 1, c as u16);
                match v {
                    serde_json::Value::Number(n) => {
                        sheet.write_number(r, c, n.as_f64().unwrap_or_default()).map_err(err)?;
                    }
                    serde_json::Value::Null => {}
                    v => {
                        sheet.write_string(r, c, cell(v)).map_err(err)?;
                    }
                }
            }
        }
    }
    book.save_to_buffer().map_err(err)
}

/// The most rows of a widget shown in the mail body (attachments carry them all).
const BODY_ROWS: usize = 25;

/// The mail body: `images` names the inline image (content id) of each drawn chart, by widget id.
fn html_of(
    dashboard: &StoredDashboard,
    filters: &DashboardFilters,
    sections: &[Section<'_>],
    images: &BTreeMap<String, String>,
) -> (String, String) {
    let range = period_of(filters);
    let mut html = String::new();
    let mut text = String::new();
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;color:#1a1a1a\"><h1>{name}</h1><p>{range}</p>",
        name = escape(&dashboard.name),
        range = escape(&range)
    );
    let _ = writeln!(text, "{}\n{range}\n", dashboard.name);
    for s in sections {
        let _ = write!(html, "<section><h2>{}</h2>", escape(s.title));
        let _ = writeln!(text, "== {}", s.title);
        let Some(t) = &s.data.table else {
            let why = s.data.error.as_deref().unwrap_or("no data");
            let _ = write!(html, "<p><em>{}</em></p></section>", escape(why));
            let _ = writeln!(text, "({why})\n");
            continue;
        };
        if s.kind == WidgetKind::Tile {
            let value = t.rows.first().and_then(|r| r.last()).and_then(serde_json::Value::as_f64);
            let shown = value.map_or_else(|| "–".to_owned(), |v| format_value(v, s.unit));
            let delta = match (value, s.data.previous) {
                (Some(v), Some(p)) if p != 0.0 => {
                    format!(" ({:+.1} % on the period before)", (v - p) / p.abs() * 100.0)
                }
                _ => String::new(),
            };
            let _ = write!(
                html,
                "<p style=\"font-size:2em;margin:0\">{}</p><p>{}</p></section>",
                escape(&shown),
                escape(delta.trim())
            );
            let _ = writeln!(text, "{shown}{delta}\n");
            continue;
        }
        if let Some(cid) = images.get(&s.widget.id.0.to_string()) {
            let _ = write!(
                html,
                "<p><img src=\"cid:{}\" alt=\"{}\" style=\"max-width:100%;height:auto\"></p>",
                escape(cid),
                escape(&format!("{} chart; the table below lists its values", s.title))
            );
        }
        html.push_str("<table style=\"border-collapse:collapse\"><thead><tr>");
        for c in &t.columns {
            let _ = write!(
                html,
                "<th scope=\"col\" style=\"text-align:left;border-bottom:1px solid #555;padding:2px 8px\">{}</th>",
                escape(c)
            );
        }
        html.push_str("</tr></thead><tbody>");
        let _ = writeln!(text, "{}", t.columns.join("\t"));
        for row in t.rows.iter().take(BODY_ROWS) {
            html.push_str("<tr>");
            for v in row {
                let _ = write!(html, "<td style=\"padding:2px 8px\">{}</td>", escape(&cell(v)));
            }
            html.push_str("</tr>");
            let _ = writeln!(text, "{}", row.iter().map(cell).collect::<Vec<_>>().join("\t"));
        }
        html.push_str("</tbody></table>");
        if t.rows.len() > BODY_ROWS {
            let more = format!("{} more rows in the attachment or on the dashboard.", t.rows.len() - BODY_ROWS);
            let _ = write!(html, "<p>{}</p>", escape(&more));
            let _ = writeln!(text, "{more}");
        }
        html.push_str("</section>");
        text.push('\n');
    }
    html.push_str("</body></html>");
    (html, text)
}

/// What one copy of a report is made of.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub report_name: &'a str,
    pub dashboard: &'a StoredDashboard,
    pub kpis: &'a BTreeMap<String, StoredKpi>,
    /// Already resolved to dates.
    pub filters: &'a DashboardFilters,
    pub format: Format,
    /// The tenant's corporate currency (how money reads on the printed dashboard).
    pub currency: &'a str,
    /// When the copy is made (named on the printed dashboard).
    pub at: DateTime<Utc>,
}

/// The period of `filters` in words.
pub fn period_of(filters: &DashboardFilters) -> String {
    match (filters.from, filters.until) {
        (Some(a), Some(b)) => format!("{a} to {}", b.pred_opt().unwrap_or(b)),
        (Some(a), None) => format!("since {a}"),
        (None, Some(b)) => format!("until {}", b.pred_opt().unwrap_or(b)),
        (None, None) => "all time".into(),
    }
}

/// The dashboard of `job` for `viewer`, in its format. `renderer` prints the PDF and the charts the
/// HTML body shows; without one, `pdf` is refused and the body has tables only.
pub async fn render(engine: &Engine, viewer: &Viewer, job: Job<'_>, renderer: Option<&Renderer>) -> Result<Rendered> {
    let Job { report_name, dashboard, kpis, filters, format, .. } = job;
    if format == Format::Pdf && renderer.is_none() {
        return Err(Error::Invalid(vec![FieldError { field: "format".into(), message: NO_RENDERER.into() }]));
    }
    let mut sections = Vec::with_capacity(dashboard.widgets.len());
    for w in &dashboard.widgets {
        let kpi = w.spec.kpi.as_ref().and_then(|k| kpis.get(k)).map(|k| &k.definition);
        let data = match kpi {
            Some(k) if k.status != Status::Approved => {
                WidgetData::unavailable(format!("the KPI {} awaits an admin's approval", k.key))
            }
            _ => {
                board::widget_data(engine, viewer, w.spec.kind, kpi, w.spec.sql.as_deref(), &w.spec.config, filters)
                    .await
            }
        };
        sections.push(Section {
            widget: w,
            title: &w.spec.title,
            kind: w.spec.kind,
            unit: kpi.map(|k| k.unit).unwrap_or_default(),
            data,
        });
    }
    let charted = |s: &Section<'_>| {
        !matches!(s.kind, WidgetKind::Tile | WidgetKind::Table) && s.data.table.is_some() && s.data.error.is_none()
    };
    let mut inline = Vec::new();
    let mut images = BTreeMap::new();
    match renderer {
        Some(r) if format != Format::Pdf && sections.iter().any(charted) => {
            let doc = print_document(&job, &sections, PrintMode::Mail)?;
            for (i, image) in r.chart_images(&doc).await.map_err(Error::Print)?.into_iter().enumerate() {
                let cid = format!("chart-{}@orbas", i + 1);
                images.insert(image.widget, cid.clone());
                inline.push(InlineImage { cid, png: image.png });
            }
        }
        _ => {}
    }
    let (html, text) = html_of(dashboard, filters, &sections, &images);
    let mut attachments = Vec::new();
    let mut taken = Vec::new();
    match format {
        Format::Html => {}
        Format::Csv => {
            for s in &sections {
                if let Some(t) = &s.data.table {
                    attachments.push(Attachment {
                        filename: format!("{}.csv", slug(s.title, &mut taken, 64)),
                        content_type: "text/csv; charset=utf-8".into(),
                        bytes: csv_of(&t.columns, &t.rows),
                    });
                }
            }
        }
        Format::Xlsx => {
            attachments.push(Attachment {
                filename: format!("{}.xlsx", slug(&dashboard.name, &mut taken, 64)),
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
                bytes: xlsx_of(&sections)?,
            });
        }
        Format::Pdf => {
            let doc = print_document(&job, &sections, PrintMode::Pdf)?;
            let r = renderer.ok_or_else(|| Error::Corrupt(NO_RENDERER.into()))?;
            attachments.push(Attachment {
                filename: format!("{}.pdf", slug(&dashboard.name, &mut taken, 64)),
                content_type: "application/pdf".into(),
                bytes: r.pdf(&doc).await.map_err(Error::Print)?,
            });
        }
    }
    Ok(Rendered { subject: format!("{report_name}: {}", dashboard.name), html, text, attachments, inline })
}

/// Why a server without Chromium refuses PDF reports.
pub const NO_RENDERER: &str = "PDF needs headless Chromium, which this server does not have (install Debian's chromium or set \
     ORBAS_CHROMIUM): use html, csv or xlsx";

/// The printed document of a copy.
fn print_document(job: &Job<'_>, sections: &[Section<'_>], mode: PrintMode) -> Result<String> {
    let subtitle =
        format!("{} · {} · made {}", job.report_name, period_of(job.filters), job.at.format("%Y-%m-%d %H:%M UTC"));
    let data = sections.iter().map(|s| &s.data);
    crate::web::render(&PrintPage::of_dashboard(mode, job.dashboard, job.kpis, data, job.currency, subtitle))
}

/// Sends rendered reports over SMTP.
pub struct Mailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish_non_exhaustive()
    }
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail settings: {0}")]
    Settings(String),
    #[error("building the message: {0}")]
    Message(String),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl Mailer {
    /// A mailer for `url` (`smtp://user:pass@host:587?tls=required`, `smtps://…`, or `smtp://host:port`
    /// without TLS for a local relay) sending from `from`.
    pub fn new(url: &str, from: &str) -> std::result::Result<Self, MailError> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Settings(format!("ORBAS_SMTP_URL: {e}")))?
            .build();
        let from = from.parse().map_err(|e| MailError::Settings(format!("ORBAS_MAIL_FROM {from:?}: {e}")))?;
        Ok(Mailer { transport, from })
    }

    /// Sends `r` to `to`.
    pub async fn send(&self, to: &str, r: &Rendered) -> std::result::Result<(), MailError> {
        use lettre::AsyncTransport as _;
        use lettre::message::header::ContentType;
        use lettre::message::{Attachment as Part, MultiPart, SinglePart};
        let to: lettre::message::Mailbox = to.parse().map_err(|e| MailError::Message(format!("{to:?}: {e}")))?;
        // The HTML with its images (multipart/related) beside the plain text.
        let html = if r.inline.is_empty() {
            MultiPart::alternative()
                .singlepart(SinglePart::plain(r.text.clone()))
                .singlepart(SinglePart::html(r.html.clone()))
        } else {
            let mut related = MultiPart::related().singlepart(SinglePart::html(r.html.clone()));
            for image in &r.inline {
                let png = ContentType::parse("image/png").map_err(|e| MailError::Message(e.to_string()))?;
                related = related.singlepart(Part::new_inline(image.cid.clone()).body(image.png.clone(), png));
            }
            MultiPart::alternative().singlepart(SinglePart::plain(r.text.clone())).multipart(related)
        };
        let body = html;
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &r.attachments {
            let ct = ContentType::parse(&a.content_type).map_err(|e| MailError::Message(e.to_string()))?;
            mixed = mixed.singlepart(Part::new(a.filename.clone()).body(a.bytes.clone(), ct));
        }
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(r.subject.clone())
            .multipart(mixed)
            .map_err(|e| MailError::Message(e.to_string()))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_in_their_zone() {
        let s = Schedule::parse("0 8 * * 1", "Europe/Berlin").expect("valid");
        let sunday = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").expect("t").with_timezone(&Utc);
        // Monday 08:00 in Berlin (UTC+1 in December) is 07:00 UTC.
        assert_eq!(s.next_after(sunday).map(|t| t.to_rfc3339()), Some("2026-12-07T07:00:00+00:00".into()));
        let every_two_seconds = Schedule::parse("*/2 * * * * *", "UTC").expect("six fields");
        let t = DateTime::parse_from_rfc3339("2026-12-06T12:00:01Z").expect("t").with_timezone(&Utc);
        assert_eq!(every_two_seconds.next_after(t).map(|t| t.to_rfc3339()), Some("2026-12-06T12:00:02+00:00".into()));
        let fields = |e: Vec<FieldError>| e.into_iter().map(|f| f.field).collect::<Vec<_>>();
        assert_eq!(Schedule::parse("61 * * * *", "UTC").map(|_| ()).map_err(fields), Err(vec!["cron".to_owned()]));
        assert_eq!(
            Schedule::parse("nope", "Mars/Olympus").map(|_| ()).map_err(fields),
            Err(vec!["cron".to_owned(), "timezone".to_owned()])
        );
    }

    #[test]
    fn pdf_needs_a_renderer() {
        let spec = ReportSpec {
            name: "Weekly".into(),
            dashboard_id: orbas_oltp::model::DashboardId(uuid::Uuid::nil()),
            cron: "0 8 * * 1".into(),
            timezone: "UTC".into(),
            recipients: vec!["a@example.com".into()],
            format: Format::Pdf,
            filters: None,
            is_active: true,
        };
        assert_eq!(spec.problems(true), Vec::new());
        let problems = spec.problems(false);
        assert_eq!(problems.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["format"]);
        assert!(problems[0].message.contains("ORBAS_CHROMIUM"), "{problems:?}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows = vec![vec![json("a,b"), json(3.0), serde_json::Value::Null, json("say \"hi\"\n")]];
        let text = String::from_utf8(csv_of(&["x".into(), "n".into(), "e".into(), "q".into()], &rows)).expect("utf8");
        assert_eq!(text, "x,n,e,q\r\n\"a,b\",3,,\"say \"\"hi\"\"\n\"\r\n");
    }

    fn json<T: Serialize>(v: T) -> serde_json::Value {
        serde_json::to_value(v).expect("json")
    }

    #[test]
    fn values_read_as_their_unit() {
        assert_eq!(format_value(1234567.4, Unit::Currency), "1,234,567");
        assert_eq!(format_value(0.256, Unit::Percent), "25.6 %");
        assert_eq!(format_value(42.0, Unit::Count), "42");
        assert_eq!(format_value(-1000.0, Unit::Currency), "-1,000");
    }

    #[test]
    fn names_are_unique_and_tame() {
        let mut taken = Vec::new();
        assert_eq!(slug("Win rate / rep", &mut taken, 31), "win_rate_rep");
        assert_eq!(slug("Win rate: rep!", &mut taken, 31), "win_rate_rep_2");
        assert_eq!(slug("???", &mut taken, 31), "widget");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
