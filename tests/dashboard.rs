//! The web dashboard, end to end: its files are served without a token under a strict CSP
//! while everything else still needs one; in a real headless Chromium (chromedriver, see
//! `support::webdriver`) a wrong token is refused at sign-in, and against a real headless
//! Blender the page signs in, lists the session an MCP client made, streams that client's
//! command into the history view within a second, filters the scene's objects by name,
//! shows a screenshot (or why there is none), and is saved to `docs/dashboard.png` for the
//! README.

mod support;

use std::time::{Duration, Instant};

use rmcp::model::ProtocolVersion;
use serde_json::json;
use support::blender::Flavour;
use support::http::{HttpServe, client};
use support::webdriver::{self, Browser};

const TOKEN: &str = "dashboard-token-0123456789abcdef";

/// The crates the command makes: a cube mesh shared by 30 objects in a grid, and a line of
/// output to find in the history view.
const CRATES: &str = "\
import bpy
verts = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
mesh = bpy.data.meshes.new('CrateMesh')
mesh.from_pydata(verts, [], faces)
for i in range(30):
    crate = bpy.data.objects.new('Crate_%03d' % (i + 1), mesh)
    crate.location = (i % 6 * 1.5, i // 6 * 1.5, 0)
    bpy.context.scene.collection.objects.link(crate)
print('stacked', len([o for o in bpy.data.objects if o.name.startswith('Crate_')]), 'crates')
";

/// The server's own base URL (`http://127.0.0.1:PORT`).
fn base(server: &HttpServe) -> String {
    format!("http://{}", server.authority())
}

/// Chromium and chromedriver, or a skip (a failure under `CI=true`).
fn browser_or_skip(test: &str) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match webdriver::prerequisites() {
        Ok(found) => Some(found),
        Err(why) => {
            support::skip(test, &format!("no headless browser: {why}"));
            None
        }
    }
}

#[tokio::test]
async fn the_page_and_its_assets_need_no_token_and_carry_a_strict_policy_while_the_rest_does() {
    let server = HttpServe::start_on("127.0.0.1:0", &[], &[("BSM_AUTH_TOKEN", TOKEN)]).await;
    let http = reqwest::Client::new();
    for (path, kind, marker) in [
        ("/", "text/html", "id=\"signin\""),
        ("/assets/app.js", "text/javascript", "\"use strict\""),
        ("/assets/app.css", "text/css", "#conn-status"),
    ] {
        let r = http
            .get(format!("{}{path}", base(&server)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let csp = header("content-security-policy");
        for rule in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self' ws: wss:",
            "img-src 'self' data: blob:",
        ] {
            assert!(csp.contains(rule), "{path}: {rule} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        let body = r.text().await.unwrap();
        assert!(body.contains(marker), "{path}");
        assert!(!body.contains(TOKEN));
    }
    // Everything else still needs the token, and the Host check still applies to the page.
    for path in [
        "/mcp",
        "/api/me",
        "/api/sessions",
        "/assets/other.js",
        "/index.html",
    ] {
        let r = http
            .get(format!("{}{path}", base(&server)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .post(format!("{}/", base(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "only GET and HEAD of the page are open");
    let r = http
        .get(format!("{}/", base(&server)))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn in_a_real_browser_the_sign_in_form_refuses_a_wrong_token() {
    const TEST: &str = "in_a_real_browser_the_sign_in_form_refuses_a_wrong_token";
    let Some((chromium, driver)) = browser_or_skip(TEST) else {
        return;
    };
    let server = HttpServe::start_on("127.0.0.1:0", &[], &[("BSM_AUTH_TOKEN", TOKEN)]).await;
    let browser = Browser::start(&chromium, &driver).await;
    browser.goto(&format!("{}/", base(&server))).await;
    let s = Duration::from_secs(5);
    browser
        .wait_for(
            "the sign-in form",
            s,
            "return !document.getElementById('signin').hidden && \
             document.getElementById('token').type === 'password';",
            json!([]),
        )
        .await;
    browser
        .type_into("#token", "not-the-token-0123456789")
        .await;
    browser.click("#signin-submit").await;
    let error = browser
        .wait_for(
            "the refusal",
            s,
            "const e = document.getElementById('signin-error'); return !e.hidden && e.textContent;",
            json!([]),
        )
        .await;
    assert!(error.as_str().unwrap().contains("not valid"), "{error}");
    let state = browser
        .execute(
            "return [document.getElementById('app').hidden, \
             sessionStorage.length, location.href];",
            json!([]),
        )
        .await;
    assert_eq!(state[0], true, "the app stays hidden");
    assert_eq!(state[1], 0, "a refused token is not kept");
    assert!(!state[2].as_str().unwrap().contains("token"), "{state}");
    // The 401 is logged by the browser as a failed load (which shows the log is read);
    // nothing else may be (no CSP violation, no script error).
    // The log reaches chromedriver on its own path: read it until the 401 is there (5 s
    // at most), keeping everything read.
    let is_refusal = |e: &String| e.contains("/api/me") && e.contains("401");
    let mut logged = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        logged.extend(browser.console_errors().await);
        if logged.iter().any(is_refusal) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (refused, errors): (Vec<String>, Vec<String>) = logged.into_iter().partition(is_refusal);
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(errors.is_empty(), "{errors:#?}");
    browser.quit().await;
    server.stop().await;
}

/// Signs in, waits for the live connection, selects `id`: the common start of the flow.
async fn sign_in_and_select(browser: &Browser, url: &str, id: &str) {
    let s = Duration::from_secs(10);
    browser.goto(url).await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#signin-submit").await;
    browser
        .wait_for(
            "signed in as the token's user",
            s,
            "return !document.getElementById('app').hidden && \
             document.getElementById('user').textContent;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the event stream connected",
            s,
            "return document.getElementById('conn-status').dataset.state === 'connected';",
            json!([]),
        )
        .await;
    let row = format!("#sessions [data-session-id=\"{id}\"]");
    browser
        .wait_for(
            "the MCP client's session in the list",
            s,
            "const li = document.querySelector(arguments[0]); return li && li.textContent;",
            json!([row]),
        )
        .await;
    browser.click(&row).await;
    browser
        .wait_for(
            "the session's detail",
            s,
            "const d = document.getElementById('detail'); \
             return d.dataset.sessionId === arguments[0] && \
             !document.getElementById('detail-body').hidden;",
            json!([id]),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_from_an_mcp_client_streams_into_the_dashboard_of_a_real_blender() {
    const TEST: &str = "a_command_from_an_mcp_client_streams_into_the_dashboard_of_a_real_blender";
    let Some((chromium, driver)) = browser_or_skip(TEST) else {
        return;
    };
    // One flavour is enough (the page sees Blender only through the server): the first
    // one usable here.
    let Some(flavour) = Flavour::ALL.into_iter().find(|f| f.launcher().is_ok()) else {
        Flavour::Blender.available_or_skip(TEST);
        return;
    };
    let port = support::closed_port();
    let blender = flavour.start(port).await;
    let server = HttpServe::start_on(
        "127.0.0.1:0",
        &["--blender-port", &port.to_string()],
        &[("BSM_AUTH_TOKEN", TOKEN)],
    )
    .await;
    let mcp = client(&server.url, Some(TOKEN), ProtocolVersion::V_2025_06_18).await;
    let made = support::call(&mcp, "create_session", json!({"name": "crates"})).await;
    let id = support::structured(support::ok(&made))["session_id"]
        .as_str()
        .expect("a session id")
        .to_owned();

    let browser = Browser::start(&chromium, &driver).await;
    sign_in_and_select(&browser, &format!("{}/", base(&server)), &id).await;

    let r = support::call(
        &mcp,
        "execute_blender_code",
        json!({"code": CRATES, "session_id": id}),
    )
    .await;
    let answered = Instant::now();
    assert_eq!(support::text(support::ok(&r)), "stacked 30 crates\n");
    let entry = browser
        .wait_for(
            "the command in the history view",
            Duration::from_secs(1),
            "for (const li of document.querySelectorAll('#history [data-seq]')) { \
               if (li.textContent.includes('stacked 30 crates')) return { \
                 seq: li.dataset.seq, outcome: li.dataset.outcome, \
                 tool: li.querySelector('.tool').textContent, \
                 lines: li.querySelectorAll('pre.code .line').length, \
                 code: li.querySelector('pre.code').textContent }; } \
             return null;",
            json!([]),
        )
        .await;
    let latency = answered.elapsed();
    assert_eq!(entry["outcome"], "success", "{entry}");
    assert_eq!(entry["tool"], "execute_blender_code", "{entry}");
    assert_eq!(
        entry["lines"],
        CRATES.lines().count(),
        "one numbered line each"
    );
    assert!(entry["code"].as_str().unwrap().contains("Crate_%03d"));

    // Objects by type, asked of Blender: 30 crates and the default cube are meshes.
    browser.click("#types-btn").await;
    browser
        .wait_for(
            "the objects by type",
            Duration::from_secs(10),
            "const li = document.querySelector('#types li[data-type=\"MESH\"]'); \
             return !!li && li.textContent === 'MESH 31';",
            json!([]),
        )
        .await;
    browser.click("#types li[data-type=\"MESH\"]").await;
    browser
        .wait_for(
            "the meshes listed",
            Duration::from_secs(10),
            "const lis = [...document.querySelectorAll('#objects li')]; \
             return lis.length === 31 && lis.some((li) => li.dataset.name === 'Crate_001');",
            json!([]),
        )
        .await;

    browser.type_into("#object-search", "crate_").await;
    let names = browser
        .wait_for(
            "the search to keep only the crates",
            Duration::from_secs(5),
            "const names = [...document.querySelectorAll('#objects li')] \
               .map((li) => li.dataset.name); \
             return names.length === 30 && names.every((n) => n.startsWith('Crate_')) && names;",
            json!([]),
        )
        .await;
    assert!(names.as_array().unwrap().iter().any(|n| n == "Crate_030"));
    let matched = browser
        .execute(
            "return document.getElementById('objects-matched').textContent;",
            json!([]),
        )
        .await;
    assert!(
        matched.as_str().unwrap().starts_with("30 match"),
        "{matched}"
    );

    // A headless Blender may have no viewport to capture: then the page says why.
    browser.click("#screenshot-btn").await;
    let shot = browser
        .wait_for(
            "the screenshot or its error",
            Duration::from_secs(60),
            "const img = document.getElementById('screenshot-img'); \
             const err = document.getElementById('screenshot-error'); \
             if (!img.hidden && img.complete && img.naturalWidth > 0) return 'image'; \
             return !err.hidden && err.textContent;",
            json!([]),
        )
        .await;
    eprintln!("dashboard: history entry {latency:?} after the answer; screenshot: {shot}");

    // The picture for the README: the session from its top.
    browser
        .execute(
            "document.getElementById('detail').scrollTop = 0; return true;",
            json!([]),
        )
        .await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();

    let errors = browser.console_errors().await;
    let unexpected: Vec<&String> = errors
        .iter()
        .filter(|e| !(shot != "image" && e.contains("screenshot")))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");

    browser.quit().await;
    let _ = mcp.cancel().await;
    server.stop().await;
    let _ = blender.stop(Duration::from_secs(10)).await;
}
