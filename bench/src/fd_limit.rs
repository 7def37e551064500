/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
/// limit. Thousands of parked connections need far more descriptors than the
/// usual soft limit of 1024, and the hard limit is as far as an unprivileged
/// process may go without help from the shell.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
