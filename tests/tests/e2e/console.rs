//! The console in a real browser: `srs serve --demo` (a small demo, its
//! fleet at work) serves the console at `/`, and `npm test` in `console/`
//! drives headless Chromium through it (`console/tests/*.spec.mjs`): sign
//! in and out, a revoked token ending the session, the dashboard's numbers
//! against the `dashboard` query, a search that survives a reload, a
//! terminal recording played, a detection marker that seeks, a comment at
//! the current time, an auditor refused a restricted recording, a live
//! session that updates, a live terminal following its tail by `Range`
//! (and renewing a refused ticket), the other pages, the detection and
//! response policy forms, the recording policy test, and a WebM recorded
//! in the browser, uploaded as a server would, played, seeked and renewed
//! when its ticket is refused mid-playback. Each page
//! is screenshotted at 1280x800 into `<target>/tmp/console-screenshots/`
//! and checked with axe-core.
//!
//! It needs Node.js with npm, the console's modules (`cd console && npm
//! ci`) and Debian's `chromium` at `/usr/bin/chromium` (`.ci/run` installs
//! them); without them it fails saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Srs;

/// Fails, naming what to install, unless the browser tests can run.
fn require_tools(console: &Path) {
    for tool in ["node", "npm"] {
        let found = Command::new(tool).arg("--version").output();
        assert!(
            found.is_ok_and(|out| out.status.success()),
            "{tool} is missing: install Node.js 20.19+ with npm (Debian: apt-get install -y nodejs npm) to run the console's browser tests"
        );
    }
    assert!(
        console.join("node_modules/playwright-core").is_dir()
            && console.join("node_modules/axe-core").is_dir(),
        "the console's npm modules are missing: run `cd console && npm ci`"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: install Debian's chromium package (apt-get install -y chromium)"
    );
}

#[tokio::test]
async fn the_console_works_in_a_real_browser_against_the_demo() {
    let console = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console");
    require_tools(&console);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start_with_env(
        &data,
        &[
            ("SRS_DEMO", "true"),
            ("SRS_DEMO_RECORDINGS", "200"),
            ("SRS_DEMO_SEED", "18"),
        ],
    )
    .await;

    // The console is served by the binary itself: its pages answer the
    // same index.html, its assets are hashed files, other paths stay 404.
    let http = reqwest::Client::new();
    let index = http.get(srs.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let policy = index.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = index.text().await.unwrap();
    let script = html
        .split('"')
        .find(|piece| piece.starts_with("/assets/") && piece.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script in {html}"))
        .to_owned();
    for page in [
        "/signin",
        "/recordings",
        "/recordings/abc",
        "/live",
        "/audit",
    ] {
        let answer = http.get(srs.url(page)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{page}");
        assert_eq!(answer.text().await.unwrap(), html, "{page}");
    }
    let asset = http.get(srs.url(&script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    for missing in ["/nothing", "/recordings/abc/def", "/assets/nothing.js"] {
        let answer = http.get(srs.url(missing)).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{missing}");
    }

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let url = srs.url("");
    let token = srs.admin_token();
    let auditor = std::fs::read_to_string(data.join("auditor.token"))
        .expect("the demo's auditor.token")
        .trim()
        .to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(&console)
            .env("SRS_URL", url)
            .env("SRS_ADMIN_TOKEN", token)
            .env("SRS_AUDITOR_TOKEN", auditor)
            .env("SRS_SCREENSHOTS", &screenshots)
            .output()
            .expect("run npm test in console/")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "the console's browser tests failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(srs.stop().success());
}
