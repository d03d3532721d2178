//! Browser tests: Debian's Chromium, driven over the DevTools protocol by `chromiumoxide` (built
//! without its fetcher, so nothing downloads a browser).
//!
//! [`Browser::launch`] starts `$ORBAS_CHROMIUM` (default `/usr/bin/chromium`) headless with
//! `--no-sandbox --disable-gpu --disable-background-networking`, a fresh temporary profile and a
//! random DevTools port. A test that needs Chromium and cannot find it fails with a message naming
//! `scripts/setup.sh` — it never skips. Screenshots go to the test's artifacts directory:
//! `$ORBAS_TEST_ARTIFACTS/<test>/`, else `<target dir>/test-artifacts/<test>/`. Every helper panics
//! with the page's URL (and saves a `failure-*.png`) when it cannot do its job, so a failing test
//! says where it was.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser as Chromium, BrowserConfig};
use chromiumoxide::page::ScreenshotParams;
use futures::StreamExt;
use serde::de::DeserializeOwned;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// How long a wait for a page state may take before the test fails.
const WAIT: Duration = Duration::from_secs(15);

/// A headless Chromium for one test.
pub struct Browser {
    chromium: Chromium,
    events: tokio::task::JoinHandle<()>,
    artifacts: PathBuf,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").field("artifacts", &self.artifacts).finish()
    }
}

/// The Chromium executable tests use.
pub fn chromium_path() -> PathBuf {
    let path = std::env::var_os("ORBAS_CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
    if !path.is_file() {
        panic!(
            "testkit: this test needs Chromium, and there is none at {} — run scripts/setup.sh (it installs \
             Debian's `chromium`) or point ORBAS_CHROMIUM at a Chromium/Chrome executable",
            path.display()
        );
    }
    path
}

/// Where the screenshots of test `test` go (created).
pub fn artifacts_dir(test: &str) -> PathBuf {
    let root = std::env::var_os("ORBAS_TEST_ARTIFACTS").map_or_else(default_artifacts_root, PathBuf::from);
    let dir = root.join(test);
    expect(std::fs::create_dir_all(&dir), "create the test-artifacts directory");
    dir
}

/// `<target dir>/test-artifacts`: test binaries run from `<target dir>/<profile>/deps/`.
fn default_artifacts_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    target.join("test-artifacts")
}

impl Browser {
    /// Starts Chromium for test `test` (the name of the artifacts directory).
    pub async fn launch(test: &str) -> Browser {
        let profile = expect(tempfile::tempdir(), "create a browser profile directory");
        let config = BrowserConfig::builder()
            .chrome_executable(chromium_path())
            .no_sandbox()
            .arg("--disable-gpu")
            .arg("--disable-background-networking")
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            .build();
        let config = match config {
            Ok(c) => c,
            Err(e) => panic!("testkit: browser configuration: {e}"),
        };
        let (chromium, mut handler) = expect(Chromium::launch(config).await, "launch Chromium");
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Browser { chromium, events, artifacts: artifacts_dir(test), _profile: profile }
    }

    /// A new tab at `url`.
    pub async fn open(&self, url: &str) -> Page {
        let page = expect(self.chromium.new_page(url).await, "open a tab");
        let page = Page { page, artifacts: self.artifacts.clone(), shots: AtomicUsize::new(0) };
        page.wait_loaded().await;
        page
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        let _ = self.chromium.close().await;
        let _ = self.chromium.wait().await;
        self.events.abort();
    }
}

/// A tab.
#[derive(Debug)]
pub struct Page {
    page: chromiumoxide::Page,
    artifacts: PathBuf,
    shots: AtomicUsize,
}

impl Page {
    /// The current URL.
    pub async fn url(&self) -> String {
        self.page.url().await.ok().flatten().unwrap_or_default()
    }

    /// Evaluates a JavaScript expression.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        let value = match self.page.evaluate(js).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("evaluate `{js}`: {e}")).await,
        };
        match value.into_value() {
            Ok(v) => v,
            Err(e) => self.fail(&format!("the value of `{js}`: {e}")).await,
        }
    }

    async fn try_eval<T: DeserializeOwned>(&self, js: &str) -> Option<T> {
        self.page.evaluate(js).await.ok()?.into_value().ok()
    }

    /// Navigates to `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.navigating(|| async {
            if let Err(e) = self.page.goto(url).await {
                self.fail(&format!("go to {url}: {e}")).await
            }
        })
        .await;
    }

    /// Waits until an element matches `selector`.
    pub async fn wait_for(&self, selector: &str) {
        let js = format!("document.querySelector({}) !== null", js_string(selector));
        self.wait_until(&format!("{selector} is on the page"), &js).await;
    }

    /// Waits until the JavaScript condition `js` is true.
    pub async fn wait_until(&self, what: &str, js: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.try_eval::<bool>(js).await == Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.fail(&format!("timed out waiting until {what}")).await
    }

    /// Whether an element matches `selector` now.
    pub async fn exists(&self, selector: &str) -> bool {
        self.eval(&format!("document.querySelector({}) !== null", js_string(selector))).await
    }

    /// The visible text of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        self.wait_for(selector).await;
        self.eval(&format!("document.querySelector({}).innerText", js_string(selector))).await
    }

    /// The visible texts of every element matching `selector`.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        self.eval(&format!("Array.from(document.querySelectorAll({})).map(e => e.innerText)", js_string(selector)))
            .await
    }

    /// Types `text` into the field `selector` (replacing what it held).
    pub async fn fill(&self, selector: &str, text: &str) {
        self.wait_for(selector).await;
        let sel = js_string(selector);
        let _: bool = self
            .eval(&format!("(e => {{ e.focus(); e.value = ''; return true; }})(document.querySelector({sel}))"))
            .await;
        self.type_text(text).await;
    }

    /// Types `text` into whatever has the focus, key by key.
    pub async fn type_text(&self, text: &str) {
        let body = self.element("body").await;
        if let Err(e) = body.type_str(text).await {
            self.fail(&format!("type text: {e}")).await
        }
    }

    /// Presses one key (`Tab`, `Enter`, …) on whatever has the focus.
    pub async fn press(&self, key: &str) {
        let body = self.element("body").await;
        if let Err(e) = body.press_key(key).await {
            self.fail(&format!("press {key}: {e}")).await
        }
    }

    /// Presses a key that leads to another page (`Enter` in a form) and waits until it has loaded.
    pub async fn press_and_wait(&self, key: &str) {
        self.navigating(|| self.press(key)).await;
    }

    /// The `id` of the focused element.
    pub async fn focused_id(&self) -> String {
        self.eval("document.activeElement ? document.activeElement.id : ''").await
    }

    /// Clicks the element `selector` (scrolled into view, at its centre, as a user would).
    pub async fn click(&self, selector: &str) {
        self.wait_for(selector).await;
        let el = self.element(selector).await;
        if let Err(e) = el.click().await {
            self.fail(&format!("click {selector}: {e}")).await
        }
    }

    /// Clicks at the viewport point (`x`, `y`) in CSS pixels (a bar or slice of a chart), which leads
    /// to another page, and waits until that page has loaded.
    pub async fn click_at_and_wait(&self, x: f64, y: f64) {
        self.navigating(|| async {
            if let Err(e) = self.page.click(chromiumoxide::layout::Point { x, y }).await {
                self.fail(&format!("click at ({x}, {y}): {e}")).await
            }
        })
        .await;
    }

    /// Clicks `selector`, which leads to another page, and waits until that page has loaded.
    pub async fn click_and_wait(&self, selector: &str) {
        self.navigating(|| self.click(selector)).await;
    }

    /// The visible texts whose colour contrast with their background is below WCAG AA (4.5:1, or 3:1
    /// for large text), as `text: ratio` — empty when the page passes.
    pub async fn low_contrast_texts(&self) -> Vec<String> {
        self.eval(CONTRAST_JS).await
    }

    /// Saves a full-page PNG as `<artifacts>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.artifacts.join(format!("{name}.png"));
        let params = ScreenshotParams::builder().full_page(true).build();
        if let Err(e) = self.page.save_screenshot(params, &path).await {
            panic!("testkit: screenshot {}: {e}", path.display());
        }
        path
    }

    async fn element(&self, selector: &str) -> chromiumoxide::Element {
        match self.page.find_element(selector).await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("find {selector}: {e}")).await,
        }
    }

    /// Runs `act`, which leaves the current document, and waits until the next one has loaded: a
    /// marker set on the old `window` is gone and the new document is complete.
    async fn navigating<F, Fut>(&self, act: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        let _: bool = self.eval("window.__orbasOldPage = true").await;
        act().await;
        self.wait_until("the next page has loaded", "window.__orbasOldPage === undefined").await;
        self.wait_loaded().await;
    }

    async fn wait_loaded(&self) {
        self.wait_until("the page has loaded", "document.readyState === 'complete'").await;
    }

    /// Saves a screenshot of the failure and fails the test with what it was doing and where.
    async fn fail(&self, what: &str) -> ! {
        let n = self.shots.fetch_add(1, Ordering::Relaxed);
        let shot = self.screenshot(&format!("failure-{n}")).await;
        panic!("browser: {what} (at {}; screenshot {})", self.url().await, shot.display())
    }
}

/// Walks the visible text nodes and computes each one's WCAG contrast ratio against the first opaque
/// background behind it.
const CONTRAST_JS: &str = r#"(() => {
  const lum = c => {
    const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const rgba = s => {
    const m = s.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(x => x).map(parseFloat);
    return { c: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const b = rgba(getComputedStyle(e).backgroundColor);
      if (b && b.a > 0) return b.c;
    }
    return [255, 255, 255];
  };
  const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const text = walk.currentNode.textContent.trim();
    const el = walk.currentNode.parentElement;
    if (!text || !el || el.closest('[aria-hidden=true]')) continue;
    const box = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    if (box.width <= 1 || box.height <= 1 || cs.visibility === 'hidden') continue;
    const fg = rgba(cs.color);
    if (!fg) continue;
    const [a, b] = [lum(fg.c), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(cs.fontSize);
    const large = size >= 24 || (parseInt(cs.fontWeight, 10) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) bad.push(`${text.slice(0, 40)}: ${ratio.toFixed(2)}`);
  }
  return bad;
})()"#;

/// A JavaScript string literal.
fn js_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn expect<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit: {what}: {e}"),
    }
}
