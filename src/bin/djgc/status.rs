//! Everything djgc writes to stderr: log lines, as text or JSON, and on a
//! terminal the progress bars.
//!
//! A person at a terminal gets bars (references read, objects listed per
//! section, orphans found, deletion with bytes, rate and ETA) with log lines
//! printed above them; a cron job or batch script, whose stderr is a file,
//! gets plain lines, or with `--log-format json` one JSON object per line
//! (`time`, `level`, `message`, and for per-object events `event`, `key`,
//! `bytes`). Bars are never drawn when stderr is not a terminal, with
//! `--quiet` or with JSON logs, unless `--progress` forces them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use indicatif::{
    HumanBytes, HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use serde_json::json;

use djgc::progress::{Notice, Progress};

use crate::cli::flagged;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sections drawn with a bar each; beyond this, one bar for all.
const SECTION_BARS: usize = 8;

/// The stderr of one run.
pub struct Console {
    format: LogFormat,
    verbose: bool,
    bars: Option<Bars>,
}

impl Console {
    /// Logs in `format`; no bars until [`Console::with_bars`].
    pub fn new(format: LogFormat) -> Console {
        Console {
            format,
            verbose: false,
            bars: None,
        }
    }

    /// This console, logging each deletion with `verbose`, and drawing bars
    /// when `forced`, or on a terminal unless `quiet` or logging JSON.
    pub fn with_bars(mut self, verbose: bool, quiet: bool, forced: bool) -> Console {
        self.verbose = verbose;
        let wanted =
            forced || (!quiet && self.format == LogFormat::Text && std::io::stderr().is_terminal());
        if wanted {
            // A forced draw target writes to stderr even when it is not a
            // terminal (indicatif's own stderr target would stay hidden).
            let target = if forced {
                ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
            } else {
                ProgressDrawTarget::stderr_with_hz(10)
            };
            self.bars = Some(Bars::new(MultiProgress::with_draw_target(target)));
        }
        self
    }

    pub fn error(&self, message: &str) {
        self.line("error", message, None);
    }

    pub fn warn(&self, message: &str) {
        self.line("warning", message, None);
    }

    pub fn info(&self, message: &str) {
        self.line("info", message, None);
    }

    /// Leaves the bars on the screen as they are, finished, and draws no
    /// more: what is printed next goes below them.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.finish();
        }
    }

    /// Writes one log line; settings the library names are named by their
    /// flags.
    fn line(&self, level: &str, message: &str, event: Option<(&str, &str, u64)>) {
        let message = &flagged(message);
        let text = match self.format {
            LogFormat::Json => {
                let mut line = json!({
                    "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
                    "level": level,
                    "message": message,
                });
                if let Some((name, key, bytes)) = event {
                    line["event"] = json!(name);
                    line["key"] = json!(key);
                    line["bytes"] = json!(bytes);
                }
                line.to_string()
            }
            LogFormat::Text => match (level, event) {
                ("info", Some(_)) => message.to_string(),
                ("warning", _) => format!("djgc: warning: {message}"),
                _ => format!("djgc: {message}"),
            },
        };
        match &self.bars {
            Some(bars) if !bars.finished.load(Ordering::Relaxed) => {
                bars.multi.println(text).unwrap_or(())
            }
            _ => eprintln!("{text}"),
        }
    }
}

impl Progress for Console {
    fn notice(&self, notice: Notice<'_>) {
        match notice {
            Notice::Info(message) => self.info(message),
            Notice::Warning(message) => self.warn(message),
            Notice::Problem(message) => self.error(message),
            Notice::WouldRefuse(objection) => {
                self.warn(&format!("--delete would refuse: {objection}"))
            }
        }
    }

    fn values_read(&self, values: u64) {
        if let Some(bars) = &self.bars {
            bars.references.inc(values);
        }
    }

    fn references_done(&self, distinct: u64) {
        if let Some(bars) = &self.bars {
            let bar = &bars.references;
            let took = bar.elapsed().as_secs_f64();
            bar.set_style(style("{prefix:>12} {human_pos} values, {msg}"));
            bar.finish_with_message(format!(
                "{} distinct paths in {took:.1} s",
                HumanCount(distinct)
            ));
        }
    }

    fn listed(&self, section: &str, objects: u64) {
        if let Some(bars) = &self.bars {
            bars.listed(section, objects);
        }
    }

    fn orphan(&self, _key: &str, bytes: u64) {
        if let Some(bars) = &self.bars {
            let total = bars.orphan_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            bars.orphans.inc(1);
            bars.orphans.set_message(HumanBytes(total).to_string());
        }
    }

    fn deleting(&self, orphans: u64, bytes: u64) {
        if let Some(bars) = &self.bars {
            bars.orphans.finish();
            let bar = bars.multi.add(ProgressBar::new(bytes));
            bar.set_style(style(
                "{prefix:>12} [{bar:20}] {msg}, {binary_bytes}/{binary_total_bytes}, \
                 {binary_bytes_per_sec}, ETA {eta}",
            ));
            bar.set_prefix("deleting");
            bar.set_message(format!("0/{orphans} objects"));
            *bars.deleting.lock().expect("bars lock") = Some((bar, orphans, 0));
        }
    }

    fn deleted(&self, key: &str, bytes: u64) {
        self.done("deleted", key, bytes);
    }

    fn quarantined(&self, key: &str, bytes: u64) {
        self.done("quarantined", key, bytes);
    }

    fn delete_failed(&self, key: &str, error: &str) {
        self.line(
            "error",
            &format!("failed to delete {key}: {error}"),
            Some(("delete_failed", key, 0)),
        );
    }
}

impl Console {
    /// One orphan deleted or moved into quarantine.
    fn done(&self, event: &str, key: &str, bytes: u64) {
        if self.verbose {
            self.line(
                "info",
                &format!("{event} {key} ({bytes} bytes)"),
                Some((event, key, bytes)),
            );
        }
        if let Some(bars) = &self.bars {
            if let Some((bar, total, done)) = bars.deleting.lock().expect("bars lock").as_mut() {
                *done += 1;
                bar.inc(bytes);
                bar.set_message(format!(
                    "{}/{} objects",
                    HumanCount(*done),
                    HumanCount(*total)
                ));
            }
        }
    }
}

/// The bars of one run.
struct Bars {
    multi: MultiProgress,
    references: ProgressBar,
    /// By section label, in the order sections were first listed (or one
    /// bar for all, past [`SECTION_BARS`] sections).
    sections: Mutex<BTreeMap<String, ProgressBar>>,
    orphans: ProgressBar,
    /// Bytes of the orphans found so far.
    orphan_bytes: AtomicU64,
    /// The deletion bar (bytes), its object total and objects done.
    deleting: Mutex<Option<(ProgressBar, u64, u64)>>,
    /// Set once the bars are left on the screen for good.
    finished: AtomicBool,
}

/// A bar style; `{rate}` is a whole count per second.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid progress template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}/s", HumanCount(state.per_sec() as u64));
            },
        )
}

impl Bars {
    fn new(multi: MultiProgress) -> Bars {
        let references = multi.add(ProgressBar::new_spinner());
        references.set_style(style(
            "{prefix:>12} {spinner} {human_pos} values ({rate}) [{elapsed}]",
        ));
        references.set_prefix("references");
        references.enable_steady_tick(Duration::from_millis(100));
        let orphans = multi.add(ProgressBar::new_spinner());
        orphans.set_style(style("{prefix:>12} {human_pos} ({msg})"));
        orphans.set_prefix("orphans");
        orphans.set_message("0 B");
        Bars {
            multi,
            references,
            sections: Mutex::new(BTreeMap::new()),
            orphans,
            orphan_bytes: AtomicU64::new(0),
            deleting: Mutex::new(None),
            finished: AtomicBool::new(false),
        }
    }

    fn listed(&self, section: &str, objects: u64) {
        let mut sections = self.sections.lock().expect("bars lock");
        let label = if sections.len() >= SECTION_BARS && !sections.contains_key(section) {
            "other sections"
        } else {
            section
        };
        let bar = sections.entry(label.to_string()).or_insert_with(|| {
            let bar = self
                .multi
                .insert_before(&self.orphans, ProgressBar::new_spinner());
            bar.set_style(style("{prefix:>12} {human_pos} objects ({rate}) {msg}"));
            bar.set_prefix("listed");
            bar.set_message(label.to_string());
            bar
        });
        bar.inc(objects);
    }

    fn finish(&self) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        self.references.finish();
        for bar in self.sections.lock().expect("bars lock").values() {
            bar.finish();
        }
        self.orphans.finish();
        if let Some((bar, _, _)) = self.deleting.lock().expect("bars lock").as_ref() {
            bar.finish();
        }
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}
