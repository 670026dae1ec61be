//! Owning the terminal: raw mode and the alternate screen in, and always
//! out again — on normal exit, on error (a guard's Drop) and on panic (a
//! hook that restores before the message is printed).

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use std::io::{self, Stdout};
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Whether the terminal is in our raw/alternate mode (so restore only
/// touches it when we changed it).
static ENTERED: AtomicBool = AtomicBool::new(false);

pub fn enter() -> io::Result<Term> {
    enable_raw_mode()?;
    ENTERED.store(true, Ordering::SeqCst);
    if let Err(e) = execute!(io::stdout(), EnterAlternateScreen, Hide) {
        restore();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(io::stdout())).inspect_err(|_| restore())
}

/// Idempotent: leaves raw mode and the alternate screen, shows the cursor.
pub fn restore() {
    if ENTERED.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

/// Restores the terminal when dropped: the error paths' safety net.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Install a panic hook that first runs `restore_fn`, then prints a short
/// message instead of a backtrace: a panic is our bug, and the operator
/// needs a usable terminal and a sentence, not a stack.
pub fn install_panic_hook(restore_fn: fn()) {
    std::panic::set_hook(Box::new(move |info| {
        restore_fn();
        eprintln!("{}", panic_message(info));
    }));
}

pub fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let what = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let place = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    format!(
        "k3s-autoscaler: internal error: {what}{place}. The terminal was restored; \
         no operation was started by this failure. Please report it."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    static RESTORED: AtomicBool = AtomicBool::new(false);

    fn fake_restore() {
        RESTORED.store(true, Ordering::SeqCst);
    }

    #[test]
    fn the_panic_hook_restores_the_terminal_first() {
        let previous = std::panic::take_hook();
        install_panic_hook(fake_restore);
        let result = std::panic::catch_unwind(|| panic!("boom"));
        std::panic::set_hook(previous);
        assert!(result.is_err());
        assert!(
            RESTORED.load(Ordering::SeqCst),
            "the hook did not restore the terminal"
        );
    }
}
