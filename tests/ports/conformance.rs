//! The conformance suites' one macro: every case of a port's suite, once
//! per backend. A suite writes its cases once, against the port's trait
//! (`mod cases`), and names a runner per backend; the macro writes one
//! module per backend and one `#[tokio::test]` per case in it, so a
//! failure names both (`conformance_state::on_moto::fences_strictly_increase`).
//!
//! ```ignore
//! conformance! {
//!     backends { on_simulator => with_sim, on_moto => with_moto }
//!     cases { acquire_renew_release, a_busy_case: true }
//! }
//! ```
//!
//! A runner is `async fn with_x(case, fixture)`: it builds the backend,
//! hands it to `case`, awaits it and checks what the backend itself must
//! (a proxy that saw every call, say). `fixture` is what a case asks of
//! its backend (`: expr` after the case); without one, the type's
//! `Default` (`()` for suites that take nothing).

macro_rules! conformance {
    (
        backends { $($backend:ident => $runner:ident),+ $(,)? }
        cases $cases:tt
    ) => {
        $( conformance!(@backend $backend $runner $cases); )+
    };
    (@backend $backend:ident $runner:ident { $($case:ident $(: $fixture:expr)?),* $(,)? }) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    $runner(cases::$case, conformance!(@fixture $($fixture)?)).await
                }
            )*
        }
    };
    (@fixture) => { Default::default() };
    (@fixture $fixture:expr) => { $fixture };
}
