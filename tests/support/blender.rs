//! Real Blender for tests, in two flavours: Debian's `blender` executable (3.4) and Blender
//! as a Python module (PyPI's `bpy` 5.3 in a venv). Whether a flavour is usable here (else
//! the test is skipped, visibly, or fails in CI) and starting a headless one running this
//! project's server script.
//!
//! # Writing a real-Blender test
//!
//! Write the test once with [`blender_test!`]; it becomes one test per flavour,
//! `NAME::blender` and `NAME::bpy`, each skipped (`support::skip`: SKIPPED, a failure under
//! `CI=true`) when its flavour is missing:
//!
//! ```ignore
//! // `blender_test!` is exported at the test crate's root: no `use` needed (one would clash);
//! // import `Flavour` only to name the type elsewhere.
//! use support::blender::Flavour;
//!
//! blender_test! {
//!     /// What it checks.
//!     async fn state_is_exact(blender: Flavour) {
//!         let port = closed_port();
//!         // A headless Blender of this flavour, stopped when dropped ...
//!         let running = blender.start(port).await;
//!         // ... or the flags that make `serve --spawn-blender`, `demo`, `chat
//!         // --spawn-blender` and the `blender` subcommand start this flavour:
//!         let mut args = vec!["serve".to_owned(), "--spawn-blender".to_owned()];
//!         args.extend(blender.spawn_args());
//!         running.stop(Duration::from_secs(10)).await.expect("stop");
//!     }
//! }
//! ```
//!
//! The body runs on a multi-threaded tokio runtime (2 workers) and sees the test file's own
//! items and imports (`use super::*`). [`Flavour::version`] says which Blender it is for
//! assertions that differ (5.x names and orders some things differently).
//!
//! The flavours: [`Flavour::Blender`] is `$BLENDER_PATH`, else `blender` on `PATH`;
//! [`Flavour::Bpy`] is the Python in `$BSM_TEST_BPY_PYTHON`, else `/opt/bpy53/bin/python`
//! if it exists, usable when it can `import bpy`. `.ci/run` installs both.
//!
//! [`blender_or_skip`] and [`start_blender`] are the Debian flavour alone, for tests not yet
//! written with [`blender_test!`].

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use blender_session_mcp::headless::{HeadlessBlender, HeadlessOptions, Launcher, find_blender};

/// The default place of the bpy venv (`.ci/run` and the project's machines make it there).
pub const DEFAULT_BPY_PYTHON: &str = "/opt/bpy53/bin/python";

/// Which Blender a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// The Blender executable in background mode (Debian's `blender`, 3.4).
    Blender,
    /// A plain Python that imports the `bpy` module (PyPI's `bpy` 5.3).
    Bpy,
}

impl Flavour {
    /// Both flavours.
    pub const ALL: [Flavour; 2] = [Flavour::Blender, Flavour::Bpy];

    /// The flavour's name, as its generated test is named.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Blender => "blender",
            Flavour::Bpy => "bpy",
        }
    }

    /// What starts this flavour's server, or why it cannot run here (checked once per test
    /// process).
    pub fn launcher(self) -> Result<Launcher, String> {
        self.probed().clone().map(|(launcher, _)| launcher)
    }

    /// Blender's version string (`3.4.1`, `5.3.0`; empty when the flavour is missing), for
    /// assertions that differ by version.
    pub fn version(self) -> String {
        self.probed()
            .as_ref()
            .map(|(_, version)| version.clone())
            .unwrap_or_default()
    }

    /// The probe's answer, cached for the test process.
    fn probed(self) -> &'static Result<(Launcher, String), String> {
        static BLENDER: OnceLock<Result<(Launcher, String), String>> = OnceLock::new();
        static BPY: OnceLock<Result<(Launcher, String), String>> = OnceLock::new();
        let cell = match self {
            Flavour::Blender => &BLENDER,
            Flavour::Bpy => &BPY,
        };
        cell.get_or_init(|| self.probe())
    }

    fn probe(self) -> Result<(Launcher, String), String> {
        let (launcher, mut command) = match self {
            Flavour::Blender => {
                let path = find_blender(None).map_err(|e| e.to_string())?;
                let mut command = std::process::Command::new(&path);
                command.arg("--version");
                (Launcher::Blender(path), command)
            }
            Flavour::Bpy => {
                let path = bpy_python()?;
                let mut command = std::process::Command::new(&path);
                command.args(["-c", "import bpy; print('Blender', bpy.app.version_string)"]);
                (Launcher::BpyPython(path), command)
            }
        };
        let out = command
            .output()
            .map_err(|e| format!("{} does not run: {e}", launcher.path().display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let version = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Blender "))
            .map(|v| v.trim().to_owned());
        match version {
            Some(version) if out.status.success() => Ok((launcher, version)),
            _ => Err(format!(
                "{} is not a usable Blender ({}): {}",
                launcher,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// Whether this flavour can run here; otherwise `test` is skipped, visibly, or fails in
    /// CI (see `support::skip`).
    #[track_caller]
    pub fn available_or_skip(self, test: &str) -> bool {
        super::require(
            test,
            self.launcher()
                .map(|_| ())
                .map_err(|why| format!("no usable {} flavour ({why})", self.name())),
        )
    }

    /// The flags that make this program start this flavour (`serve --spawn-blender`, `demo`,
    /// `chat --spawn-blender`, `blender`): `--blender PATH` or `--blender-python PATH`.
    pub fn spawn_args(self) -> Vec<String> {
        let launcher = self.launcher().expect("checked by available_or_skip");
        let flag = match launcher {
            Launcher::Blender(_) => "--blender",
            Launcher::BpyPython(_) => "--blender-python",
        };
        vec![flag.to_owned(), launcher.path().display().to_string()]
    }

    /// Start a headless Blender of this flavour on 127.0.0.1:`port` (killed when dropped).
    pub async fn start(self, port: u16) -> HeadlessBlender {
        HeadlessBlender::start(&HeadlessOptions {
            launcher: self.launcher().expect("checked by available_or_skip"),
            host: "127.0.0.1".into(),
            port,
            blend_file: None,
            startup_timeout: Duration::from_secs(120),
        })
        .await
        .expect("headless Blender starts")
    }
}

/// The bpy flavour's Python: `$BSM_TEST_BPY_PYTHON`, else [`DEFAULT_BPY_PYTHON`] if it
/// exists.
fn bpy_python() -> Result<PathBuf, String> {
    match std::env::var_os("BSM_TEST_BPY_PYTHON").filter(|v| !v.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None if std::path::Path::new(DEFAULT_BPY_PYTHON).exists() => {
            Ok(PathBuf::from(DEFAULT_BPY_PYTHON))
        }
        None => Err(format!(
            "BSM_TEST_BPY_PYTHON is not set and {DEFAULT_BPY_PYTHON} does not exist"
        )),
    }
}

/// One real-Blender test per flavour: `async fn NAME(FLAVOUR: Flavour) { BODY }` becomes
/// the tests `NAME::blender` and `NAME::bpy`, each skipped when its flavour is missing. See
/// the module documentation.
#[macro_export]
macro_rules! blender_test {
    ($(#[$meta:meta])* async fn $name:ident($flavour:ident: Flavour) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($flavour: $crate::support::blender::Flavour) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn blender() {
                let flavour = $crate::support::blender::Flavour::Blender;
                if flavour.available_or_skip(concat!(stringify!($name), "::blender")) {
                    run(flavour).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bpy() {
                let flavour = $crate::support::blender::Flavour::Bpy;
                if flavour.available_or_skip(concat!(stringify!($name), "::bpy")) {
                    run(flavour).await;
                }
            }
        }
    };
}

/// Whether the Debian flavour can run here: otherwise `test` is skipped, visibly, or fails
/// in CI (see `support::skip`).
#[track_caller]
pub fn blender_or_skip(test: &str) -> bool {
    Flavour::Blender.available_or_skip(test)
}

/// Start a headless Blender of the Debian flavour on `port`.
pub async fn start_blender(port: u16) -> HeadlessBlender {
    Flavour::Blender.start(port).await
}

/// A command sent on a raw connection to the addon port, as another client would: the plain
/// addon `execute_code`, without this server's helper.
pub async fn raw_execute(port: u16, code: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("raw connect");
    let request = serde_json::json!({"type": "execute_code", "params": {"code": code}}).to_string();
    s.write_all(request.as_bytes()).await.expect("raw write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(120), s.read(&mut chunk))
            .await
            .expect("raw reply in time")
            .expect("raw read");
        assert!(n > 0, "the raw connection closed before the reply");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            return v;
        }
    }
}
