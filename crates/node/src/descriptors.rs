//! The process's descriptor limit. Every connection holds a descriptor, and the usual soft
//! limit (1,024) is far below the connection caps of a role's ports: at that limit `accept`
//! fails on every port at once. Roles raise the soft limit to the hard one when they start and
//! log what they obtained.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The descriptor limit before and after [`raise_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit in force now.
    pub now: u64,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
}

/// The highest soft limit the kernel allows when the hard limit is unlimited.
fn kernel_ceiling() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Raises the soft descriptor limit to the hard limit (to the kernel's ceiling when the hard
/// limit is unlimited). Never lowers it.
pub fn raise_limit() -> Result<DescriptorLimit, std::io::Error> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let ceiling = kernel_ceiling();
    let before = current.unwrap_or(u64::MAX);
    let target = maximum.unwrap_or(ceiling).min(ceiling.max(before));
    if target <= before {
        return Ok(DescriptorLimit {
            before,
            now: before,
            hard: maximum,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum,
        },
    )?;
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    Ok(DescriptorLimit {
        before,
        now,
        hard: maximum,
    })
}

/// [`raise_limit`], with one log line saying what was obtained; `needed` is the number of
/// connections the role's ports may hold together, and a limit below it is warned about.
/// Returns the soft limit in force.
pub fn raise_and_report(role: &str, needed: usize) -> Option<u64> {
    match raise_limit() {
        Ok(limit) => {
            let hard = limit
                .hard
                .map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
            tracing::info!(
                before = limit.before,
                now = limit.now,
                hard = %hard,
                "{role}: descriptor limit {} (was {}, hard limit {hard})",
                limit.now,
                limit.before,
            );
            // Some room beyond the ports' connections: the ledger, logs, outgoing links.
            let wanted = needed as u64 + 256;
            if limit.now < wanted {
                tracing::warn!(
                    "{role}: the descriptor limit {} is below the {wanted} the connection caps \
                     need; lower the caps or raise the hard limit (ulimit -Hn, LimitNOFILE=)",
                    limit.now
                );
            }
            Some(limit.now)
        }
        Err(e) => {
            tracing::warn!("{role}: cannot raise the descriptor limit: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit_and_never_lowers() {
        let first = raise_limit().unwrap();
        assert!(first.now >= first.before);
        if let Some(hard) = first.hard {
            assert!(first.now == hard || first.now == kernel_ceiling().max(first.before));
        }
        let again = raise_limit().unwrap();
        assert_eq!(again.before, first.now);
        assert_eq!(again.now, first.now);
    }
}
