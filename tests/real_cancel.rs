//! Cancelling on real Blender: this project's headless server stops a cancelled script (the
//! classic addon cannot), so the session's next command runs at once instead of waiting
//! behind it.

mod support;

use std::time::{Duration, Instant};

use blender_session_mcp::backend::Target;
use blender_session_mcp::session::{Call, Outcome, Registry, SessionError};
use support::{EVENT_WAIT, closed_port, config};
use tokio_util::sync::CancellationToken;

blender_test! {
    async fn a_cancelled_endless_script_is_stopped_by_the_headless_server(flavour: Flavour) {
        let port = closed_port();
        let blender = flavour.start(port).await;
        let mut cfg = config(Target::new("127.0.0.1", port));
        // Were the script not stopped, the next command would wait this long and time out.
        cfg.command_timeout = Duration::from_secs(30);
        let reg = Registry::new(cfg);
        let id = reg.create_session(None).await.expect("session");
        // Tell the server script what it speaks (its replies say it can cancel).
        reg.execute_code(&id, "pass", &Call::new("t"))
            .await
            .expect("warm-up");

        // One file per flavour: both flavours run at once in this process, and one's cleanup
        // must not remove the other's signal.
        let started = std::env::temp_dir()
            .join(format!("bsm-cancel-{}-{flavour:?}", std::process::id()));
        let _ = std::fs::remove_file(&started);
        let code = format!(
            "open({:?}, 'w').close()\nn = 0\nwhile True:\n    n += 1",
            started.to_string_lossy()
        );
        let cancel = CancellationToken::new();
        let running = {
            let (reg, id) = (reg.clone(), id.clone());
            let call = Call::new("execute_blender_code").with_cancel(cancel.clone());
            tokio::spawn(async move { reg.execute_code(&id, &code, &call).await })
        };
        // The script itself says it is running: then cancel.
        let deadline = Instant::now() + EVENT_WAIT;
        while !started.exists() {
            assert!(Instant::now() < deadline, "the script never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        let err = running.await.expect("task").expect_err("cancelled");
        assert!(
            matches!(err, SessionError::Cancelled { sent: true }),
            "{err:?}"
        );

        let t = Instant::now();
        let out = reg
            .execute_code(&id, "print('after')", &Call::new("t"))
            .await
            .expect("the next command runs");
        assert_eq!(out.stdout, "after\n");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the endless script was not stopped: the next command took {:?}",
            t.elapsed()
        );
        let outcomes: Vec<Outcome> = reg
            .get_session_history(&id, None)
            .await
            .expect("history")
            .entries
            .iter()
            .map(|e| e.outcome)
            .collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Success, Outcome::Cancelled, Outcome::Success]
        );
        let _ = std::fs::remove_file(&started);
        reg.shutdown().await;
        let _ = blender.stop(Duration::from_secs(10)).await;
    }
}
