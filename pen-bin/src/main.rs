//! `pen`: command line -> `pen_core::Config` -> run.
//!
//! Exit status: 0 after a clean exit, 1 on a runtime failure (bind, privileges, pid file),
//! 2 on a usage error. Every error is one line on stderr starting `pen: `.

mod cli;
mod privs;

use std::process::ExitCode;

use cli::{Cli, Run};
use pen_core::Balancer;

/// Exit status for runtime failures.
const EXIT_RUNTIME: u8 = 1;
/// Exit status for usage errors.
const EXIT_USAGE: u8 = 2;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("pen: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_workers = std::env::var("PEN_WORKERS").ok();
    match cli::parse_args_env(&args, env_workers.as_deref()) {
        Ok(Cli::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Cli::Version) => {
            println!("pen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Cli::Run(run)) => run_balancer(*run),
        Err(e) => fail(EXIT_USAGE, e),
    }
}

fn run_balancer(run: Run) -> ExitCode {
    if let Err(e) = cli::check_root(&run, privs::euid()) {
        return fail(EXIT_USAGE, e);
    }
    // Look the user up before starting, so a typo fails before anything is bound.
    let user = match run.user.as_deref().map(privs::lookup).transpose() {
        Ok(u) => u,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    // Without -f C pen detaches; until daemon mode exists we stay in the foreground either way.
    if !run.foreground && run.config.settings.debug > 0 {
        eprintln!("pen: daemon mode is not implemented yet; staying in the foreground");
    }
    let pid_file = run.config.pid_file.clone();
    let balancer = match Balancer::start(run.config) {
        Ok(b) => b,
        Err(e) => return fail(EXIT_RUNTIME, e),
    };
    if let Some(user) = &user {
        if let Err(e) = privs::drop_to(user) {
            balancer.stop();
            return fail(EXIT_RUNTIME, e);
        }
    }
    if let Some(path) = &pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            balancer.stop();
            return fail(
                EXIT_RUNTIME,
                format_args!("cannot write pid file {}: {e}", path.display()),
            );
        }
    }
    balancer.wait();
    if let Some(path) = &pid_file {
        // Best effort: after dropping privileges we may no longer be allowed to remove it.
        if let Err(e) = std::fs::remove_file(path) {
            eprintln!("pen: cannot remove pid file {}: {e}", path.display());
        }
    }
    ExitCode::SUCCESS
}
