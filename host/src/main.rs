//! The `snow` command; everything lives in the library.

// A proxied request makes some twenty allocations, many freed on another
// worker than the one that made them; glibc's malloc spent 5,000 of its
// 47,000 instructions on them, mimalloc 2,000 (README, "The allocator").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    snow::cli::main()
}
