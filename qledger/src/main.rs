//! The `qledger` binary; see [`qledger::cli`].

fn main() -> std::process::ExitCode {
    // Crash points named in FAILPOINTS, in builds with the `failpoints`
    // feature only (the notifier's crash tests); a no-op otherwise.
    let _failpoints = fail::FailScenario::setup();
    qledger::cli::main()
}
