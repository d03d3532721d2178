//! The printed form of a dashboard: one self-contained HTML document (styles, ECharts and `app.js`
//! inline, the data as JSON) that headless Chromium turns into a PDF or into chart images — see
//! [`crate::render`]. The widgets are the web UI's own view models, so paper says what the screen says;
//! tables are shown in full beside their charts (no `<details>`, no drill-down links).

use std::borrow::Cow;
use std::sync::OnceLock;

use askama::Template;
use serde_json::Value;

use std::collections::BTreeMap;

use super::boards::{Labels, WidgetView, script_json};
use crate::board::WidgetData;
use crate::catalog::StoredKpi;
use crate::store::StoredDashboard;

/// What the printed document is for: its charts are drawn as vectors for a PDF and as canvases (read
/// back as PNG images) for a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintMode {
    Pdf,
    Mail,
}

impl PrintMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PrintMode::Pdf => "pdf",
            PrintMode::Mail => "mail",
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "print.html")]
pub struct PrintPage {
    pub mode: &'static str,
    pub title: String,
    /// The report, the period and when it was made, in words.
    pub subtitle: String,
    pub widgets: Vec<WidgetView>,
    pub data_json: String,
    pub css: &'static str,
    pub echarts: &'static str,
    pub app: &'static str,
}

/// An embedded text asset, made safe to sit inside a `<script>` or `<style>` element (`</script` or
/// `</style` would end the element early; `<\/` means the same inside JS strings and CSS).
fn inline(path: &str) -> String {
    let text = match super::assets::embedded(path) {
        Some(Cow::Borrowed(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Cow::Owned(b)) => String::from_utf8_lossy(&b).into_owned(),
        None => String::new(),
    };
    text.replace("</script", "<\\/script").replace("</style", "<\\/style")
}

/// The inlined assets, read once.
fn assets() -> &'static [String; 3] {
    static ASSETS: OnceLock<[String; 3]> = OnceLock::new();
    ASSETS.get_or_init(|| [inline("app.css"), inline("vendor/echarts/echarts.min.js"), inline("app.js")])
}

impl PrintPage {
    /// The printed document of a dashboard: `widgets` as [`WidgetView::new`] made them (view and chart
    /// data).
    pub fn new(
        mode: PrintMode,
        title: impl Into<String>,
        subtitle: impl Into<String>,
        widgets: Vec<(WidgetView, Option<Value>)>,
    ) -> Self {
        let (widgets, charts): (Vec<_>, Vec<_>) = widgets.into_iter().unzip();
        PrintPage {
            mode: mode.as_str(),
            title: title.into(),
            subtitle: subtitle.into(),
            widgets,
            data_json: script_json(&Value::Array(charts.into_iter().flatten().collect())),
            css: &assets()[0],
            echarts: &assets()[1],
            app: &assets()[2],
        }
    }
}

impl PrintPage {
    /// The printed `dashboard` whose widgets hold `data` (in widget order); `kpis` by key, money in
    /// `currency`.
    pub fn of_dashboard<'a>(
        mode: PrintMode,
        dashboard: &StoredDashboard,
        kpis: &BTreeMap<String, StoredKpi>,
        data: impl IntoIterator<Item = &'a WidgetData>,
        currency: &str,
        subtitle: impl Into<String>,
    ) -> Self {
        let labels = Labels::new();
        let widgets = dashboard
            .widgets
            .iter()
            .zip(data)
            .map(|(w, data)| {
                let kpi = w.spec.kpi.as_ref().and_then(|k| kpis.get(k)).map(|k| &k.definition);
                WidgetView::new(&w.id.0.to_string(), &w.spec, kpi, data, currency, None, &labels)
            })
            .collect();
        PrintPage::new(mode, dashboard.name.clone(), subtitle, widgets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_whole_and_cannot_be_closed_early() {
        let page = PrintPage::new(PrintMode::Pdf, "Board </script>", "Weekly", Vec::new());
        let html = super::super::render(&page).expect("renders");
        assert!(html.contains("data-print=\"pdf\""));
        assert!(!html.contains("Board </script>"), "the title is escaped");
        assert!(html.contains("Board &#60;/script&#62;") || html.contains("Board &lt;/script&gt;"), "{html}");
        // The inline scripts are the whole assets: exactly the three script elements end.
        assert_eq!(html.matches("</script>").count(), 3);
        assert!(html.contains("window.orbasChartImages"));
        assert!(html.contains("echarts"));
        assert!(!html.contains("src=\"/"), "nothing is fetched");
    }
}
