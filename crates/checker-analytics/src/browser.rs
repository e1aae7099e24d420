//! Rendered mode: headless Chromium driven over the DevTools protocol (`chromiumoxide`). A page
//! is loaded, left to settle, then its DOM (and the DOM of its same-origin iframes), the network
//! requests it made and the main-frame navigations (script redirects) are read.
//!
//! Every browser gets a fresh profile directory and the flags that keep an offline machine from
//! hanging on lookups. A browser that cannot start is an error that says why: the caller
//! reports ERROR, never a silent static fallback.

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSent;
use chromiumoxide::cdp::browser_protocol::page::EventFrameNavigated;
use chromiumoxide::{Browser, BrowserConfig};
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

/// How to start and use the browser.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// The Chromium (or Chrome) executable.
    pub chromium: PathBuf,
    /// How long scripts may run after the load event before the DOM is read.
    pub settle: Duration,
    /// Whole-page budget: navigation, settle time and reading the DOM.
    pub timeout: Duration,
}

/// What a rendered page showed.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    /// The main frame's DOM after scripts ran, serialised.
    pub dom: String,
    /// `(src, outerHTML)` of each iframe whose document could be read (same origin).
    pub frames: Vec<(String, String)>,
    /// `src` of iframes whose document could not be read (cross-origin).
    pub opaque_frames: Vec<String>,
    /// Every request the page (and its in-process iframes) made.
    pub requests: Vec<String>,
    /// Main-frame navigations, in order (the first is the requested URL).
    pub navigations: Vec<String>,
    /// The URL the page ended on.
    pub final_url: String,
}

/// A running headless Chromium with its own profile; close it with [`Chromium::close`].
pub struct Chromium {
    browser: Browser,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
    opts: RenderOptions,
}

/// The flags every launch gets (besides chromiumoxide's own defaults and `--headless`).
pub const FLAGS: [&str; 5] = [
    "disable-gpu",
    "disable-quic",
    "disable-component-update",
    "disable-site-isolation-trials",
    "no-default-browser-check",
];

impl Chromium {
    /// Start a browser. The error says which executable and why it failed.
    pub async fn launch(opts: RenderOptions) -> Result<Self, String> {
        let exe = opts.chromium.display().to_string();
        if !opts.chromium.exists() {
            return Err(format!(
                "cannot start chromium: `{exe}` does not exist (install the Debian package `chromium` or set `chromium_path`)"
            ));
        }
        let profile = tempfile::Builder::new()
            .prefix("funnelgate-chromium-")
            .tempdir()
            .map_err(|e| {
                format!("cannot start chromium: cannot create a profile directory: {e}")
            })?;
        let mut builder = BrowserConfig::builder()
            .chrome_executable(&opts.chromium)
            .no_sandbox()
            .user_data_dir(profile.path())
            .launch_timeout(Duration::from_secs(20))
            .request_timeout(opts.timeout);
        for f in FLAGS {
            builder = builder.arg(f);
        }
        let config = builder
            .build()
            .map_err(|e| format!("cannot start chromium `{exe}`: {e}"))?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .map_err(|e| format!("cannot start chromium `{exe}`: {e}"))?;
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(error) = event {
                    tracing::debug!(%error, "chromium devtools connection");
                }
            }
        });
        Ok(Chromium {
            browser,
            handler,
            _profile: profile,
            opts,
        })
    }

    /// Load a page and read it after the settle time, within the page timeout.
    pub async fn render(&self, url: &str) -> Result<Rendered, String> {
        match tokio::time::timeout(self.opts.timeout, self.render_inner(url)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "rendering timed out after {:?} (page timeout)",
                self.opts.timeout
            )),
        }
    }

    async fn render_inner(&self, url: &str) -> Result<Rendered, String> {
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .map_err(|e| format!("chromium: cannot open a tab: {e}"))?;
        let result = self.load(&page, url).await;
        if let Err(error) = page.close().await {
            tracing::debug!(%error, "chromium: closing a tab");
        }
        result
    }

    async fn load(&self, page: &chromiumoxide::Page, url: &str) -> Result<Rendered, String> {
        let mut requests = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .map_err(|e| format!("chromium: cannot listen to network events: {e}"))?;
        let mut navigations = page
            .event_listener::<EventFrameNavigated>()
            .await
            .map_err(|e| format!("chromium: cannot listen to navigations: {e}"))?;
        page.goto(url)
            .await
            .map_err(|e| format!("chromium: cannot load {url}: {e}"))?;
        // The settle time is the documented wait for tag managers and delayed injections.
        tokio::time::sleep(self.opts.settle).await;
        let dom = page
            .content()
            .await
            .map_err(|e| format!("chromium: cannot read the dom of {url}: {e}"))?;
        let frames_json: String = page
            .evaluate(FRAMES_JS)
            .await
            .map_err(|e| format!("chromium: cannot read the iframes of {url}: {e}"))?
            .into_value()
            .map_err(|e| format!("chromium: unreadable iframe list: {e}"))?;
        let frames: Vec<(String, Option<String>)> = serde_json::from_str(&frames_json)
            .map_err(|e| format!("chromium: unreadable iframe list: {e}"))?;
        let final_url = page
            .url()
            .await
            .map_err(|e| format!("chromium: cannot read the url: {e}"))?
            .unwrap_or_else(|| url.to_string());
        let mut out = Rendered {
            dom,
            final_url,
            ..Default::default()
        };
        for (src, html) in frames {
            match html {
                Some(h) => out.frames.push((src, h)),
                None => out.opaque_frames.push(src),
            }
        }
        while let Some(Some(ev)) = requests.next().now_or_never() {
            out.requests.push(ev.request.url.clone());
        }
        while let Some(Some(ev)) = navigations.next().now_or_never() {
            if ev.frame.parent_id.is_none() {
                out.navigations.push(ev.frame.url.clone());
            }
        }
        Ok(out)
    }

    /// Close the browser and wait for its process, then remove its profile.
    pub async fn close(mut self) {
        if let Err(error) = self.browser.close().await {
            tracing::debug!(%error, "chromium: close");
        }
        if let Err(error) = self.browser.wait().await {
            tracing::debug!(%error, "chromium: wait");
        }
        self.handler.abort();
    }
}

const FRAMES_JS: &str = r#"JSON.stringify(Array.from(document.querySelectorAll('iframe')).map(function (f) {
  try {
    var d = f.contentDocument;
    return [f.src, d && d.documentElement ? d.documentElement.outerHTML : null];
  } catch (e) { return [f.src, null]; }
}))"#;
