//! The progress bar of long runs (replay, import, reprobe): on stderr and drawn only on a
//! terminal, so that a script reading stdout gets the summary line alone.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar counting `what` (e.g. "dead letters replayed") towards `total`, with rate and ETA;
/// the total may be set later, once known.
pub fn bar(total: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let style = ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} ({{percent}}%, {{rate}}, {{eta}} left)"
    ))?
    // indicatif's own {per_sec} prints four decimals.
    .with_key(
        "rate",
        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        },
    );
    let bar = ProgressBar::new(total).with_style(style);
    // Redrawn while a slow batch is in flight, so that the rate and ETA stay current.
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}
