//! The `snow` command; everything lives in the library.

fn main() -> std::process::ExitCode {
    snow::cli::main()
}
