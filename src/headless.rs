//! Starting, watching and stopping a headless Blender that runs this project's own
//! BlenderMCP-compatible server (the classic backend's `python/headless_server.py`, embedded
//! in the binary), in either host the script supports ([`Launcher`]): the Blender executable
//! in background mode, or a plain Python that has the `bpy` module (Blender as a Python
//! module, e.g. PyPI's `bpy` 5.x, on a machine without a Blender install).
//!
//! The popular GUI addon refuses to start under `blender -b` and its commands run on timers
//! that never fire there; our script runs its own main-thread loop instead and speaks the
//! same protocol, so the rest of this crate talks to it exactly as to the GUI addon.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::backend::Target;

/// The Blender-side server script.
pub const SERVER_SCRIPT: &str = crate::backend::classic::HEADLESS_SERVER;

/// How to install Blender where it is missing.
pub const INSTALL_HINT: &str = "Install Blender (Debian/Ubuntu: sudo apt-get install --no-install-recommends blender; elsewhere: https://www.blender.org/download/) and point --blender / BLENDER_PATH at its executable if it is not on PATH; or, without a Blender install, use Blender as a Python module (python3.13 -m venv VENV && VENV/bin/pip install bpy) with --blender-python VENV/bin/python (or BSM_BLENDER_PYTHON).";

/// Why a headless Blender could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    /// No Blender executable was found.
    #[error("no Blender executable found ({looked}). {INSTALL_HINT}")]
    NotFound {
        /// Where we looked.
        looked: String,
    },
    /// The process could not be spawned.
    #[error("could not start {path}: {source}. {INSTALL_HINT}")]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the server script to a temporary file failed.
    #[error("could not write the Blender server script to a temporary file: {0}")]
    Script(#[source] std::io::Error),
    /// Blender exited before its server answered.
    #[error(
        "Blender exited ({status}) before its server answered on {target}; its output above says why"
    )]
    Exited {
        /// Where it should have listened.
        target: Target,
        /// How it exited.
        status: ExitStatus,
    },
    /// The server did not answer in time.
    #[error("Blender's server did not answer on {target} within {after:?}")]
    Timeout {
        /// Where it should have listened.
        target: Target,
        /// How long we waited.
        after: Duration,
    },
    /// Something else already listens on the port.
    #[error(
        "something already listens on {0}; stop it or choose another port (--port / --blender-port)"
    )]
    PortInUse(Target),
}

/// What runs the server script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// The Blender executable, in background mode: `blender -b [FILE] --python SCRIPT -- ARGS`.
    Blender(PathBuf),
    /// A Python interpreter that can `import bpy` (Blender as a Python module):
    /// `python SCRIPT ARGS [--blend-file FILE]`.
    BpyPython(PathBuf),
}

impl Launcher {
    /// The executable started.
    pub fn path(&self) -> &Path {
        match self {
            Launcher::Blender(path) | Launcher::BpyPython(path) => path,
        }
    }

    /// The command that runs `script` as these options say.
    fn command(&self, script: &Path, options: &HeadlessOptions) -> Command {
        let mut command = Command::new(self.path());
        match self {
            Launcher::Blender(_) => {
                command.arg("-b");
                if let Some(file) = &options.blend_file {
                    command.arg(file);
                }
                // Blender reads its own arguments up to `--`, the script the rest.
                command.arg("--python").arg(script).arg("--");
            }
            Launcher::BpyPython(_) => {
                command.arg(script);
                if let Some(file) = &options.blend_file {
                    command.arg("--blend-file").arg(file);
                }
            }
        }
        command
            .args(["--host", &options.host, "--port"])
            .arg(options.port.to_string())
            // The script stops Blender if this process dies without stopping it.
            .arg("--parent-pid")
            .arg(std::process::id().to_string());
        command
    }
}

impl std::fmt::Display for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Launcher::Blender(path) => write!(f, "{}", path.display()),
            Launcher::BpyPython(path) => write!(f, "the bpy module in {}", path.display()),
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct HeadlessOptions {
    /// What runs the server script.
    pub launcher: Launcher,
    /// Listen address (IPv4).
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// A `.blend` file to open.
    pub blend_file: Option<PathBuf>,
    /// How long to wait for the server to answer.
    pub startup_timeout: Duration,
}

/// How to start a headless Blender when one is needed (the CLI's `--blender`,
/// `--blender-python`, `--blend-file`, `--startup-timeout`).
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    /// The executable (default: `$BLENDER_PATH`, else `blender` on `PATH`).
    pub blender: Option<PathBuf>,
    /// A Python with the `bpy` module to run the server in instead of the Blender
    /// executable (`--blender-python` / `BSM_BLENDER_PYTHON`); `blender` wins when both are
    /// given.
    pub python: Option<PathBuf>,
    /// A `.blend` file to open.
    pub blend_file: Option<PathBuf>,
    /// How long to wait for its server to answer.
    pub startup_timeout: Duration,
}

impl SpawnConfig {
    /// Launch options for `target`, resolving the executable.
    pub fn options(&self, target: &Target) -> Result<HeadlessOptions, HeadlessError> {
        Ok(HeadlessOptions {
            launcher: find_launcher(self.blender.as_deref(), self.python.as_deref())?,
            host: target.host.clone(),
            port: target.port,
            blend_file: self.blend_file.clone(),
            startup_timeout: self.startup_timeout,
        })
    }
}

/// What runs the server: an explicit Blender executable, else a Python with the `bpy`
/// module when one is given, else [`find_blender`]'s search.
pub fn find_launcher(
    blender: Option<&Path>,
    python: Option<&Path>,
) -> Result<Launcher, HeadlessError> {
    match (blender, python.filter(|p| !p.as_os_str().is_empty())) {
        (Some(path), _) => Ok(Launcher::Blender(path.to_path_buf())),
        (None, Some(python)) => Ok(Launcher::BpyPython(python.to_path_buf())),
        (None, None) => find_blender(None).map(Launcher::Blender),
    }
}

/// Find the Blender executable: `explicit`, else `BLENDER_PATH`, else an executable `blender`
/// on `PATH` (`blender.exe` and the other `PATHEXT` forms on Windows).
pub fn find_blender(explicit: Option<&Path>) -> Result<PathBuf, HeadlessError> {
    choose_blender(explicit, std::env::var_os("BLENDER_PATH"), || {
        which::which("blender")
    })
}

/// [`find_blender`]'s order, with `BLENDER_PATH`'s value and the `PATH` search given.
fn choose_blender(
    explicit: Option<&Path>,
    blender_path: Option<OsString>,
    on_path: impl FnOnce() -> which::Result<PathBuf>,
) -> Result<PathBuf, HeadlessError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = blender_path.filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    on_path().map_err(|_| HeadlessError::NotFound {
        looked: "no --blender, no --blender-python, no BLENDER_PATH, no blender on PATH".into(),
    })
}

/// Whether something accepts TCP connections on `target` right now.
pub async fn port_answers(target: &Target) -> bool {
    let host = target.host.trim_matches(['[', ']']).to_owned();
    let connect = tokio::net::TcpStream::connect((host.as_str(), target.port));
    match tokio::time::timeout(Duration::from_millis(500), connect).await {
        // A connection to itself (TCP simultaneous open: the kernel picked the free port
        // itself as the source port) means nothing listens there.
        Ok(Ok(stream)) => !matches!(
            (stream.local_addr(), stream.peer_addr()),
            (Ok(local), Ok(peer)) if local == peer
        ),
        _ => false,
    }
}

/// A running headless Blender. Dropping it kills Blender; [`HeadlessBlender::stop`] stops it
/// cleanly.
#[derive(Debug)]
pub struct HeadlessBlender {
    child: Child,
    target: Target,
    _script: tempfile::TempPath,
}

impl HeadlessBlender {
    /// Start Blender in background mode with the server script, forward its output to this
    /// process's stderr, and wait until the server answers.
    pub async fn start(options: &HeadlessOptions) -> Result<Self, HeadlessError> {
        let target = Target::new(options.host.clone(), options.port);
        if port_answers(&target).await {
            return Err(HeadlessError::PortInUse(target));
        }
        let mut script = tempfile::Builder::new()
            .prefix("bsm_server_")
            .suffix(".py")
            .tempfile()
            .map_err(HeadlessError::Script)?;
        script
            .write_all(SERVER_SCRIPT.as_bytes())
            .map_err(HeadlessError::Script)?;
        let script = script.into_temp_path();

        let mut command = options.launcher.command(&script, options);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| HeadlessError::Spawn {
            path: options.launcher.path().to_path_buf(),
            source,
        })?;
        // Blender's own output goes to our stderr, never to stdout (the MCP channel).
        if let Some(mut out) = child.stdout.take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out, &mut tokio::io::stderr()).await;
            });
        }
        if let Some(mut err) = child.stderr.take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut err, &mut tokio::io::stderr()).await;
            });
        }
        let mut blender = HeadlessBlender {
            child,
            target,
            _script: script,
        };
        blender.wait_ready(options.startup_timeout).await?;
        Ok(blender)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), HeadlessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HeadlessError::Exited {
                    target: self.target.clone(),
                    status,
                });
            }
            if port_answers(&self.target).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.start_kill();
                return Err(HeadlessError::Timeout {
                    target: self.target.clone(),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the server listens.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Blender's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Wait until Blender exits by itself.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stop Blender: SIGTERM (its server closes connections and Blender exits), then SIGKILL
    /// if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        #[cfg(unix)]
        if let Some(pid) = self.child.id() {
            use nix::sys::signal::{Signal, kill};
            use nix::unistd::Pid;
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await {
                return status;
            }
        }
        #[cfg(not(unix))]
        let _ = grace;
        self.child.kill().await?;
        self.child.wait().await
    }
}

/// Make sure a Blender server answers on `target`: if something already listens there (a GUI
/// Blender with the addon, say) leave it alone and return `None`; otherwise start a headless
/// Blender with `options` and return it (the caller stops it).
pub async fn ensure_running(
    target: &Target,
    options: impl FnOnce() -> Result<HeadlessOptions, HeadlessError>,
) -> Result<Option<HeadlessBlender>, HeadlessError> {
    if port_answers(target).await {
        tracing::info!("Blender already listening on {target}; using it and leaving it alone");
        return Ok(None);
    }
    let options = options()?;
    tracing::info!(
        "starting headless Blender ({}) on {target}",
        options.launcher
    );
    let blender = HeadlessBlender::start(&options).await?;
    tracing::info!(
        "✓ headless Blender ready on {target} (pid {})",
        blender.pid().unwrap_or(0)
    );
    Ok(Some(blender))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory holding a `blender` file, executable or not.
    fn dir_with_blender(executable: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = if cfg!(windows) {
            "blender.exe"
        } else {
            "blender"
        };
        let file = dir.path().join(name);
        std::fs::write(&file, "#!/bin/sh\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = if executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let _ = executable;
        dir
    }

    fn search(dir: &Path) -> impl FnOnce() -> which::Result<PathBuf> + '_ {
        move || which::which_in("blender", Some(dir), dir)
    }

    #[test]
    fn explicit_then_blender_path_then_path() {
        let dir = dir_with_blender(true);
        let explicit = Path::new("/opt/blender-4.2/blender");
        let env = Some(OsString::from("/opt/blender-env/blender"));
        let found = choose_blender(Some(explicit), env.clone(), search(dir.path()));
        assert_eq!(found.unwrap(), explicit);
        let found = choose_blender(None, env, search(dir.path()));
        assert_eq!(found.unwrap(), Path::new("/opt/blender-env/blender"));
        // An empty BLENDER_PATH counts as unset.
        let found = choose_blender(None, Some(OsString::new()), search(dir.path()));
        assert!(found.unwrap().starts_with(dir.path()));
    }

    #[test]
    fn an_explicit_blender_wins_over_a_bpy_python() {
        let blender = Path::new("/opt/blender/blender");
        let python = Path::new("/opt/bpy53/bin/python");
        assert_eq!(
            find_launcher(Some(blender), Some(python)).unwrap(),
            Launcher::Blender(blender.into())
        );
        assert_eq!(
            find_launcher(None, Some(python)).unwrap(),
            Launcher::BpyPython(python.into())
        );
    }

    #[test]
    fn a_bpy_python_runs_the_script_with_its_arguments_directly() {
        let options = HeadlessOptions {
            launcher: Launcher::BpyPython("/opt/bpy53/bin/python".into()),
            host: "127.0.0.1".into(),
            port: 9877,
            blend_file: Some("scene.blend".into()),
            startup_timeout: Duration::from_secs(1),
        };
        let command = options.launcher.command(Path::new("s.py"), &options);
        let args: Vec<_> = command
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..7],
            [
                "s.py",
                "--blend-file",
                "scene.blend",
                "--host",
                "127.0.0.1",
                "--port",
                "9877"
            ]
        );
        assert_eq!(args[7], "--parent-pid");
        let blender = Launcher::Blender("blender".into());
        let command = blender.command(Path::new("s.py"), &options);
        let args: Vec<_> = command
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..6],
            ["-b", "scene.blend", "--python", "s.py", "--", "--host"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_blender_on_path_that_cannot_run_is_not_found() {
        let dir = dir_with_blender(false);
        let e = choose_blender(None, None, search(dir.path())).unwrap_err();
        assert!(matches!(e, HeadlessError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("no blender on PATH"), "{e}");
    }
}
