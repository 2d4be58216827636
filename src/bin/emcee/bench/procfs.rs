//! Sampling a server process from `/proc` (Linux): resident memory (`VmRSS` of
//! `/proc/PID/status`) and CPU time (`utime + stime` of `/proc/PID/stat`).

use std::time::Duration;

/// `/proc/PID/stat` counts in USER_HZ clock ticks, which is 100 on every Linux
/// architecture the kernel exports to user space (it is not the kernel's `HZ`).
const TICKS_PER_SEC: u64 = 100;

/// One sample of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time so far.
    pub cpu: Duration,
}

/// Sample `pid`; `None` when it does not exist (or `/proc` is not there).
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Sample {
        rss_bytes: rss_of_status(&status)?,
        cpu: cpu_of_stat(&stat)?,
    })
}

/// `VmRSS:    1234 kB` → bytes.
pub fn rss_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next().unwrap_or("kB") {
        "kB" | "KB" | "kb" => 1024,
        "mB" | "MB" => 1024 * 1024,
        _ => 1,
    };
    Some(n * unit)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\temcee\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n";
        assert_eq!(rss_of_status(status), Some(2048 * 1024));
        assert_eq!(rss_of_status("Name: x\n"), None);
        let stat = "1234 (em cee) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    100 1000000 500 18446744073709551615";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_secs(3)));
        assert_eq!(cpu_of_stat("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("/proc/self");
        assert!(s.rss_bytes > 0);
        assert_eq!(sample(u32::MAX), None);
    }
}
