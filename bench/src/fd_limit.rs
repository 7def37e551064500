/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
/// limit. Thousands of parked connections need far more descriptors than the
/// usual soft limit of 1024, and the hard limit is as far as an unprivileged
/// process may go without help from the shell.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Raises the limit as [`raise_nofile_limit`] does and warns when it still
/// cannot hold `connections` sockets plus a few descriptors of the tool's own.
pub fn raise_nofile_limit_for(connections: usize) -> anyhow::Result<()> {
    use anyhow::Context;
    let limit = raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    if limit < connections as u64 + 64 {
        eprintln!("warning: RLIMIT_NOFILE is {limit}, too low for {connections} connections");
    }
    Ok(())
}
