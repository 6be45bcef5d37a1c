//! Modules of the integration test binary.

pub(crate) mod backends;
pub(crate) mod harness;

mod acl;
mod bulk;
mod cli;
mod compat;
mod compat_cli;
mod compat_control;
mod compat_engine;
mod compat_output;
mod compat_runtime;
mod control;
mod differential;
mod failover;
mod faults;
mod faults_load;
mod health_checks;
mod health_states;
mod http;
mod lifecycle;
mod netns;
mod ops_config;
mod ops_daemon;
mod ops_stats;
mod process;
mod relay;
mod sec_admission;
mod sec_control;
mod sec_files;
mod sec_http;
mod sec_numbers;
mod selection;
mod tls;
mod tls_util;
mod udp;
