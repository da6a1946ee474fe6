//! The `qledger` binary; see [`qledger::cli`].

fn main() -> std::process::ExitCode {
    qledger::cli::main()
}
