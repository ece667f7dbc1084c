//! Process and disk resources.

use std::path::Path;

/// Peak resident set size of this process in bytes (`VmHWM`), if the
/// platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmHWM:",
    )
}

/// Current resident set size of this process in bytes (`VmRSS`), if the
/// platform reports it.
pub fn rss_bytes() -> Option<u64> {
    status_bytes(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmRSS:",
    )
}

/// Current resident set size of process `pid` in bytes, if the platform
/// reports it.
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    status_bytes(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS:",
    )
}

/// Peak resident set size of process `pid` so far in bytes, if the
/// platform reports it.
pub fn peak_rss_bytes_of(pid: u32) -> Option<u64> {
    status_bytes(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmHWM:",
    )
}

/// Starts this process's peak RSS (`VmHWM`) afresh from its current RSS
/// (Linux' `clear_refs`, value 5), so that [`peak_rss_bytes`] then
/// reports the peak of what follows only. False where the platform does
/// not allow it: the peak then covers the whole process life.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:   1234 kB`), in bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status = "Name:\tsrs\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_bytes(status, "VmRSS:"), Some(1024 * 1024));
        assert_eq!(status_bytes(status, "VmHWM:"), Some(2048 * 1024));
        assert_eq!(status_bytes(status, "VmSwap:"), None);
    }

    #[test]
    fn a_reset_peak_forgets_what_was_freed_before() {
        // Not every platform offers the reset; where it does, a peak
        // reached and freed before the reset is no longer reported.
        let block = vec![1u8; 256 << 20];
        assert_eq!(
            block
                .iter()
                .step_by(4096)
                .map(|b| u64::from(*b))
                .sum::<u64>(),
            1 << 16
        );
        let before = peak_rss_bytes().unwrap_or(0);
        drop(block);
        if reset_peak_rss() {
            let after = peak_rss_bytes().unwrap();
            assert!(
                after + (128 << 20) < before,
                "peak {before} before, {after} after"
            );
        }
    }
}
