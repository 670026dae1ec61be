//! How the process ends: the one place exit codes are defined (the README's
//! "Exit codes" says the same). Every command returns an `Exit`; `main`
//! turns it into the process's code.

use std::fmt::Display;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok,
    /// 1: failed at run time (a backend refused, a check failed).
    Failed,
    /// 2: bad usage or configuration (nothing was attempted).
    Usage,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
        }
    }

    /// `error: {message}` on stderr, then this exit.
    pub fn with_error(self, message: impl Display) -> Exit {
        eprintln!("error: {message}");
        self
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
