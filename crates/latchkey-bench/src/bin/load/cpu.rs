//! Where the machine's time went during a phase, from `/proc` (Linux): the server's threads
//! by kind, the driver itself, and the time no core did anything. Clock ticks are 10 ms
//! (`CLK_TCK` = 100 on every Linux we run on), so a phase should last seconds.

use std::collections::BTreeMap;

/// Milliseconds per clock tick.
const TICK_MS: f64 = 10.0;

/// One reading of the counters.
pub struct CpuSample {
    /// Server ticks (user + system) by thread kind.
    server: BTreeMap<&'static str, u64>,
    driver: u64,
    /// All cores: idle (with I/O wait), and time in interrupts.
    idle: u64,
    irq: u64,
}

/// The kind of a server thread, from its name (`comm`, cut at 15 bytes by the kernel).
fn kind(comm: &str) -> &'static str {
    if comm.starts_with("latchkey-hash") {
        "hashing"
    } else if comm.starts_with("latchkey-sqlit") {
        "writer"
    } else if comm.starts_with("tokio") || comm.starts_with("latchkey") {
        "runtime"
    } else {
        "other"
    }
}

/// utime + stime of a `/proc/…/stat` line; the name in parentheses may hold spaces.
fn ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

impl CpuSample {
    pub fn take(server_pid: u32) -> Self {
        let mut server = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{server_pid}/task")) {
            for task in tasks.flatten() {
                let path = task.path().join("stat");
                if let Some((comm, t)) = std::fs::read_to_string(path).ok().and_then(|s| ticks(&s))
                {
                    *server.entry(kind(&comm)).or_insert(0) += t;
                }
            }
        }
        let driver = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| ticks(&s))
            .map_or(0, |(_, t)| t);
        let (mut idle, mut irq) = (0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().find(|l| l.starts_with("cpu "))
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …
            idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            irq = v.get(5).copied().unwrap_or(0) + v.get(6).copied().unwrap_or(0);
        }
        Self {
            server,
            driver,
            idle,
            irq,
        }
    }

    /// Milliseconds per unit of work between `self` (earlier) and `later`, by kind:
    /// the server's thread kinds, `driver`, `interrupts` and `idle` (summed over cores).
    pub fn per_unit(&self, later: &Self, units: usize) -> Vec<(String, f64)> {
        let n = f64::from(u32::try_from(units.max(1)).unwrap_or(u32::MAX));
        let ms = |a: u64, b: u64| {
            f64::from(u32::try_from(b.saturating_sub(a)).unwrap_or(u32::MAX)) * TICK_MS / n
        };
        let mut out: Vec<(String, f64)> = later
            .server
            .iter()
            .map(|(k, t)| {
                let before = self.server.get(k).copied().unwrap_or(0);
                (format!("server {k}"), ms(before, *t))
            })
            .collect();
        out.push(("driver".into(), ms(self.driver, later.driver)));
        out.push(("interrupts".into(), ms(self.irq, later.irq)));
        out.push(("idle".into(), ms(self.idle, later.idle)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_name_and_ticks() {
        let line = "42 (latchkey-hash 0) S 1 42 42 0 -1 4194304 10 0 0 0 250 31 0 0 20 0 3 0";
        assert_eq!(ticks(line), Some(("latchkey-hash 0".into(), 281)));
        assert_eq!(kind("latchkey-hash-1"), "hashing");
        assert_eq!(kind("latchkey-sqlite"), "writer");
        assert_eq!(kind("tokio-runtime-w"), "runtime");
    }
}
