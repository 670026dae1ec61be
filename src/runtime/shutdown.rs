//! Injected shutdown (as in mini-redis): one flag that signal handlers and
//! the console's `q` set, and that every loop checks at its safe points.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        #[cfg(feature = "failpoints")]
        super::failpoint::SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown is requested (immediately if it already was).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }

    /// SIGTERM and Ctrl-C request shutdown; a second one is not special:
    /// the current step still finishes and the lock is still released.
    /// The handlers are registered before this returns, so a signal that
    /// arrives right after start-up is never the default (fatal) one.
    pub fn listen_for_signals(&self) {
        let me = self.clone();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (term, int) = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("cannot listen for SIGTERM/SIGINT: {e}");
                    return;
                }
            };
            tokio::spawn(async move {
                let (mut term, mut int) = (term, int);
                tokio::select! {
                    _ = term.recv() => tracing::info!(target: "runtime", "SIGTERM: finishing the current step, then exiting"),
                    _ = int.recv() => tracing::info!(target: "runtime", "interrupt: finishing the current step, then exiting"),
                }
                me.request();
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            me.request();
        });
    }
}
