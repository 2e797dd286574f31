//! Looking at a report the way a user will: headless Chromium (Debian's `chromium` package)
//! renders the HTML to a PNG, and every console message it logs at warning level or above is
//! collected, so "it renders, with no console errors" is something a test can check.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What Chromium made of a page.
#[derive(Debug, Clone)]
pub struct BrowserCheck {
    pub screenshot: PathBuf,
    /// Console messages (`CONSOLE(...)` log lines) and failed resource loads.
    pub console_errors: Vec<String>,
    /// Share of screenshot pixels that are not white, and distinct colours seen.
    pub ink: f64,
    pub colours: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("no Chromium found (looked for {0}); install Debian's `chromium` package")]
    NotFound(String),
    #[error("chromium on {page}: {message}")]
    Failed { page: String, message: String },
}

/// The Chromium binary: `$SCENETOK_CHROMIUM`, else `chromium` / `chromium-browser` on the PATH.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCENETOK_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n))).find(|p| p.is_file())
}

/// Renders `page` headless into `screenshot` (PNG, `width`×`height`) and collects console errors.
pub fn check_page(page: &Path, screenshot: &Path, width: u32, height: u32) -> Result<BrowserCheck, BrowserError> {
    let chromium = find_chromium().ok_or_else(|| BrowserError::NotFound("$SCENETOK_CHROMIUM, chromium".into()))?;
    let fail = |message: String| BrowserError::Failed { page: page.display().to_string(), message };
    let page_abs = page.canonicalize().map_err(|e| fail(format!("cannot open the page: {e}")))?;
    let profile = tempfile_dir().map_err(|e| fail(format!("no temporary profile folder: {e}")))?;
    // Flags for a closed network and no session bus: without the background-networking ones
    // Chromium keeps trying (and logging) connections that this machine refuses.
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page_abs.display()))
        .output()
        .map_err(|e| fail(format!("cannot run {}: {e}", chromium.display())))?;
    let _ = std::fs::remove_dir_all(&profile);
    let log = String::from_utf8_lossy(&out.stderr);
    let console_errors: Vec<String> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Failed to load resource") || l.contains("net::ERR_"))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        return Err(fail(format!("exited with {}: {}", out.status, log.lines().last().unwrap_or(""))));
    }
    let img = image::open(screenshot).map_err(|e| fail(format!("no readable screenshot: {e}")))?.to_rgb8();
    let total = (img.width() as usize * img.height() as usize).max(1);
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for p in img.pixels() {
        if p.0 != [255, 255, 255] {
            inked += 1;
        }
        if colours.len() < 100_000 {
            colours.insert(p.0);
        }
    }
    Ok(BrowserCheck {
        screenshot: screenshot.to_path_buf(),
        console_errors,
        ink: inked as f64 / total as f64,
        colours: colours.len(),
    })
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("scenetok-chromium-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
