//! Headless Chromium as the renderer of printed dashboards: the PDF of a whole dashboard and the PNG
//! images of its charts that HTML mails carry inline. One renderer serves screen and paper — the page
//! printed is drawn by the same `app.js` and ECharts as the web UI (see [`crate::web::PrintPage`]).
//!
//! Owns one browser process per server, started on first use (`--headless --no-sandbox --disable-gpu
//! --disable-background-networking`, a temporary profile) and restarted when it has died. Every
//! rendering writes the self-contained document to a file in the browser's private profile directory
//! and opens it in a tab of its own (no network: the document's content security policy allows inline
//! scripts and styles and `data:` images only), waits until the page says its charts are drawn (`data-charts-ready` on the root
//! element) and closes the tab. At most [`PAGES`] renderings run at once; each is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use futures::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{Mutex, Semaphore};
use tracing::{debug, info, instrument, warn};

/// Renderings at once (each is a tab; a 2-core server gains nothing from more).
pub const PAGES: usize = 2;
/// How long one rendering may take, start of the tab to its result.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Where Chromium usually is when `ORBAS_CHROMIUM` does not say.
const CANDIDATES: [&str; 4] =
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"];

/// Why a rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("starting Chromium ({path}): {message}")]
    Launch { path: PathBuf, message: String },
    #[error("Chromium: {0}")]
    Browser(#[from] chromiumoxide::error::CdpError),
    #[error("the page was not drawn within {0:?}")]
    Timeout(Duration),
    #[error("the page's charts: {0}")]
    Charts(String),
    #[error("writing the page for Chromium: {0}")]
    Io(#[from] std::io::Error),
}

/// A running browser.
struct Running {
    browser: Browser,
    events: tokio::task::JoinHandle<()>,
    /// The browser's profile; the documents printed are written here too.
    profile: tempfile::TempDir,
}

/// The renderer (see the module docs).
pub struct Renderer {
    path: PathBuf,
    running: Mutex<Option<Running>>,
    pages: Semaphore,
    /// Names the documents written for the tabs.
    documents: AtomicU64,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A chart drawn as a PNG image: the widget's id and the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartImage {
    pub widget: String,
    pub png: Vec<u8>,
}

impl Renderer {
    /// A renderer with the Chromium at `path` (nothing starts until the first rendering).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Renderer {
            path: path.into(),
            running: Mutex::new(None),
            pages: Semaphore::new(PAGES),
            documents: AtomicU64::new(0),
        }
    }

    /// The renderer of this machine: `ORBAS_CHROMIUM` when set (an error when it is not a file), else
    /// the first Chromium or Chrome at a usual place; `Ok(None)` when there is none.
    pub fn from_env() -> Result<Option<Self>, RenderError> {
        if let Some(path) = std::env::var_os("ORBAS_CHROMIUM").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(RenderError::Launch { path, message: "ORBAS_CHROMIUM names no file".into() });
            }
            return Ok(Some(Renderer::new(path)));
        }
        Ok(CANDIDATES.iter().map(Path::new).find(|p| p.is_file()).map(Renderer::new))
    }

    /// The Chromium executable this renderer starts.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn launch(&self) -> Result<Running, RenderError> {
        let launch_err = |message: String| RenderError::Launch { path: self.path.clone(), message };
        let profile = tempfile::Builder::new()
            .prefix("orbas-chromium-")
            .tempdir()
            .map_err(|e| launch_err(format!("a profile directory: {e}")))?;
        let config = BrowserConfig::builder()
            .chrome_executable(&self.path)
            .no_sandbox()
            .arg("--disable-gpu")
            .arg("--disable-background-networking")
            .arg("--disable-extensions")
            .arg("--hide-scrollbars")
            .arg("--mute-audio")
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            .build()
            .map_err(launch_err)?;
        let (browser, mut handler) = Browser::launch(config).await.map_err(|e| launch_err(e.to_string()))?;
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        info!(path = %self.path.display(), "Chromium started for rendering");
        Ok(Running { browser, events, profile })
    }

    /// A fresh tab and the browser's profile directory, starting (or restarting) the browser when
    /// needed.
    async fn tab(&self) -> Result<(chromiumoxide::Page, PathBuf), RenderError> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_ref() {
            match r.browser.new_page("about:blank").await {
                Ok(page) => return Ok((page, r.profile.path().to_owned())),
                Err(e) => warn!(error = %e, "Chromium did not open a tab; restarting it"),
            }
            if let Some(mut old) = running.take() {
                let _ = old.browser.kill().await;
                old.events.abort();
            }
        }
        let r = self.launch().await?;
        let page = r.browser.new_page("about:blank").await?;
        let profile = r.profile.path().to_owned();
        *running = Some(r);
        Ok((page, profile))
    }

    /// Runs `work` on a tab holding `html`, once its charts are drawn; the tab is closed after.
    async fn with_page<T>(
        &self,
        html: &str,
        work: impl AsyncFnOnce(&chromiumoxide::Page) -> Result<T, RenderError>,
    ) -> Result<T, RenderError> {
        let _slot = self.pages.acquire().await.map_err(|_| RenderError::Charts("the renderer is closed".into()))?;
        let (page, profile) = self.tab().await?;
        // A navigation to a file (not `document.write` into a blank tab): the document is parsed and
        // its scripts run exactly as in a page the browser loaded.
        let file = profile.join(format!("print-{}.html", self.documents.fetch_add(1, Ordering::Relaxed)));
        let done = tokio::time::timeout(TIMEOUT, async {
            tokio::fs::write(&file, html).await?;
            let url = url::Url::from_file_path(&file)
                .map_err(|()| RenderError::Charts(format!("no file URL for {}", file.display())))?;
            page.goto(url.as_str()).await?;
            wait_drawn(&page).await?;
            work(&page).await
        })
        .await
        .unwrap_or(Err(RenderError::Timeout(TIMEOUT)));
        if let Err(e) = page.close().await {
            debug!(error = %e, "closing a rendering tab");
        }
        if let Err(e) = tokio::fs::remove_file(&file).await {
            debug!(error = %e, "removing a printed document");
        }
        done
    }

    /// The document `html` printed to PDF: A4 landscape, backgrounds kept, the document's own page
    /// size when it sets one (`@page`).
    #[instrument(skip_all, fields(bytes = html.len()))]
    pub async fn pdf(&self, html: &str) -> Result<Vec<u8>, RenderError> {
        self.with_page(html, async |page| {
            let params = PrintToPdfParams::builder()
                .landscape(true)
                .print_background(true)
                .prefer_css_page_size(true)
                .paper_width(11.69)
                .paper_height(8.27)
                .margin_top(0.4)
                .margin_bottom(0.4)
                .margin_left(0.4)
                .margin_right(0.4)
                .generate_document_outline(true)
                .build();
            Ok(page.pdf(params).await?)
        })
        .await
    }

    /// Every chart of the document `html` as a PNG (twice the CSS size, on white), in page order.
    #[instrument(skip_all, fields(bytes = html.len()))]
    pub async fn chart_images(&self, html: &str) -> Result<Vec<ChartImage>, RenderError> {
        #[derive(Deserialize)]
        struct Drawn {
            widget: String,
            url: String,
        }
        self.with_page(html, async |page| {
            let drawn: Vec<Drawn> = page
                .evaluate("window.orbasChartImages ? window.orbasChartImages() : []")
                .await?
                .into_value()
                .map_err(|e| RenderError::Charts(e.to_string()))?;
            drawn
                .into_iter()
                .map(|d| {
                    let b64 = d
                        .url
                        .strip_prefix("data:image/png;base64,")
                        .ok_or_else(|| RenderError::Charts(format!("widget {}: not a PNG data URL", d.widget)))?;
                    let png = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| RenderError::Charts(format!("widget {}: {e}", d.widget)))?;
                    Ok(ChartImage { widget: d.widget, png })
                })
                .collect()
        })
        .await
    }

    /// Stops the browser (a later rendering starts it again).
    pub async fn close(&self) {
        if let Some(mut r) = self.running.lock().await.take() {
            let _ = r.browser.close().await;
            let _ = r.browser.wait().await;
            r.events.abort();
        }
    }
}

/// Waits until the page's script has drawn every chart (`data-charts-ready` on `<html>`).
async fn wait_drawn(page: &chromiumoxide::Page) -> Result<(), RenderError> {
    let mut pause = Duration::from_millis(10);
    loop {
        let ready: Option<String> = page
            .evaluate("document.documentElement.getAttribute('data-charts-ready')")
            .await?
            .into_value()
            .unwrap_or(None);
        match ready.as_deref() {
            Some("1") => return Ok(()),
            Some(other) => return Err(RenderError::Charts(format!("the page reported {other:?}"))),
            None => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
