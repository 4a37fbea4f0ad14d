//! The figures' table (min, p50, p99, n, target per figure, printed as Markdown) and the
//! measures it is filled from: duration formatting, medians, a process's RSS, open file
//! descriptors.

use std::time::Duration;

pub(crate) struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table { rows: Vec::new() }
    }

    fn row(&mut self, figure: &str, values: [String; 4], target: &str) {
        let [min, p50, p99, n] = values;
        self.rows
            .push([figure.into(), min, p50, p99, n, target.into()]);
        eprintln!("  measured: {figure}");
    }

    pub(crate) fn timings(&mut self, figure: &str, samples: &mut [Duration], target: &str) {
        samples.sort();
        let n = samples.len();
        let pick = |q: f64| samples[((n as f64 - 1.0) * q).round() as usize];
        self.row(
            figure,
            [
                fmt_d(samples[0]),
                fmt_d(pick(0.5)),
                fmt_d(pick(0.99)),
                n.to_string(),
            ],
            target,
        );
    }

    pub(crate) fn value(&mut self, figure: &str, value: String, target: &str) {
        self.row(figure, ["".into(), value, "".into(), "1".into()], target);
    }

    pub(crate) fn print(&self) {
        println!("| figure | min | p50 | p99 | n | target |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r[0], r[1], r[2], r[3], r[4], r[5]
            );
        }
    }
}

pub(crate) fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

pub(crate) fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub(crate) fn rss_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".into(),
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
