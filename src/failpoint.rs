//! Test-only crash points: `MANGO_TEST_FAILPOINT=NAME` makes the process abort (as a SIGKILL
//! would end it: no drain, no destructors, nothing flushed) when it reaches the point `NAME`,
//! so the crash-recovery tests (`tests/crash.rs`) can kill the real binary between a database
//! commit and the answer. Compiled into every build, so the tests run what ships; never set it
//! in production. The variable is read once, at the first point reached.
//!
//! | point | where |
//! |---|---|
//! | `webhook_before_finish` | a delivery's invalidation is committed, the delivery not yet marked processed |
//! | `webhook_after_commit` | a delivery is marked processed, the answer not yet written |
//! | `confirm_after_commit` | Biz's booking is recorded on the draft, the answer not yet written |
//! | `fill_panics` | the first cache fill from Biz panics instead (once: the process lives on) |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub const VARIABLE: &str = "MANGO_TEST_FAILPOINT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(VARIABLE).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Aborts the process if `point` is the armed failpoint; else one load of a set cell.
pub fn hit(point: &'static str) {
    if armed() == Some(point) {
        eprintln!("{VARIABLE}={point}: aborting");
        std::process::abort();
    }
}

/// Panics the first time `point` is reached if it is the armed failpoint (later hits pass):
/// the process lives on, so a test can see what a panic left behind.
pub fn panic_once(point: &'static str) {
    static PANICKED: AtomicBool = AtomicBool::new(false);
    if armed() == Some(point) && !PANICKED.swap(true, Ordering::Relaxed) {
        panic!("{VARIABLE}={point}: panicking once");
    }
}
