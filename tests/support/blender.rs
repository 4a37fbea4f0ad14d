//! Real Blender for tests: whether one is usable here (else the test is skipped, visibly, or
//! fails in CI), and starting a headless one running this project's server script.

use std::time::Duration;

use blender_session_mcp::headless::{HeadlessBlender, HeadlessOptions, find_blender};

/// Whether real-Blender tests can run here: otherwise `test` is skipped, visibly, or fails in
/// CI (see [`support::skip`]).
#[track_caller]
pub fn blender_or_skip(test: &str) -> bool {
    let usable = match find_blender(None) {
        Ok(path)
            if std::process::Command::new(&path)
                .arg("--version")
                .output()
                .is_ok() =>
        {
            Ok(())
        }
        Ok(path) => Err(format!("{} does not run", path.display())),
        Err(e) => Err(e.to_string()),
    };
    super::require(
        test,
        usable.map_err(|why| format!("no usable Blender ({why})")),
    )
}

pub async fn start_blender(port: u16) -> HeadlessBlender {
    HeadlessBlender::start(&HeadlessOptions {
        blender: find_blender(None).expect("blender"),
        host: "127.0.0.1".into(),
        port,
        blend_file: None,
        startup_timeout: Duration::from_secs(120),
    })
    .await
    .expect("headless Blender starts")
}
