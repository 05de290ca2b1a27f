//! `loggate`: see `loggate --help`. All logic lives in the library.

fn main() -> std::process::ExitCode {
    loggate::cli::run()
}
