//! Process metrics read from Linux procfs at scrape time (RSS, CPU, open fds, threads),
//! under the names Prometheus client libraries use.

use prometheus::core::Collector;
use prometheus::{Counter, IntGauge};

/// What `/proc/self/stat` says about this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatSample {
    /// User plus system CPU time in clock ticks.
    pub cpu_ticks: u64,
    pub threads: i64,
    pub rss_pages: i64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<StatSample> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    Some(StatSample {
        cpu_ticks: utime + stime,
        threads: field(20)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

pub struct ProcessMetrics {
    rss: IntGauge,
    cpu: Counter,
    fds: IntGauge,
    threads: IntGauge,
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|e| super::malformed(name, e))
}

impl ProcessMetrics {
    pub(super) fn new() -> Self {
        Self {
            rss: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            ),
            cpu: Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds",
            )
            .unwrap_or_else(|e| super::malformed("process_cpu_seconds_total", e)),
            fds: gauge("process_open_fds", "Number of open file descriptors"),
            threads: gauge("process_threads", "Number of OS threads in the process"),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.rss.clone()),
            Box::new(self.cpu.clone()),
            Box::new(self.fds.clone()),
            Box::new(self.threads.clone()),
        ]
    }

    /// Reads procfs; on a system without it the values stay as they were.
    pub fn refresh(&self) {
        if let Some(s) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            // SAFETY: sysconf only reads system configuration.
            let (ticks, page) = unsafe {
                (
                    libc::sysconf(libc::_SC_CLK_TCK),
                    libc::sysconf(libc::_SC_PAGESIZE),
                )
            };
            if ticks > 0 {
                let cpu = s.cpu_ticks as f64 / ticks as f64;
                let delta = cpu - self.cpu.get();
                if delta > 0.0 {
                    self.cpu.inc_by(delta);
                }
            }
            self.rss.set(s.rss_pages * page.max(0));
            self.threads.set(s.threads);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 \
                    100 123456789 5000 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(StatSample {
                cpu_ticks: 300,
                threads: 7,
                rss_pages: 5000
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_process() {
        let m = ProcessMetrics::new();
        m.refresh();
        assert!(m.rss.get() > 0);
        assert!(m.threads.get() >= 1);
        assert!(m.fds.get() >= 3);
    }
}
