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
    pub fn listen_for_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = match signal(SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("cannot listen for SIGTERM: {e}");
                        let _ = tokio::signal::ctrl_c().await;
                        me.request();
                        return;
                    }
                };
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: finishing the current step, then exiting"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: finishing the current step, then exiting"),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            me.request();
        });
    }
}
