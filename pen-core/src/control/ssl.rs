//! The `ssl_*` configuration commands applied to the model's [`TlsOptions`]. The files they
//! name are read when the change is prepared as a whole (`Model::prepare`), so a bad file
//! refuses the change.

use super::command::SslCommand;
use crate::error::{ApplyError, ParseError};
use crate::tls::names::{parse_cipher_list, parse_ssl_option, SslOption};
use crate::tls::TlsOptions;

/// The one argument of `command`, or an error naming what is missing or extra.
fn one<'a>(
    command: SslCommand,
    args: &'a [String],
    expected: &'static str,
) -> Result<&'a str, ParseError> {
    match args {
        [a] => Ok(a),
        [] => Err(ParseError::MissingArgument {
            command: command.to_string(),
            expected,
        }),
        [_, extra, ..] => Err(ParseError::TrailingArgument(extra.clone())),
    }
}

/// Applies one `ssl_*` command to `tls`; returns its reply.
pub(crate) fn apply(
    tls: &mut TlsOptions,
    which: SslCommand,
    args: &[String],
) -> Result<String, ApplyError> {
    Ok(match which {
        SslCommand::Ciphers => {
            if args.is_empty() {
                // A query: the list in force.
                return Ok(tls
                    .ciphers
                    .as_ref()
                    .map(|c| format!("{c}\n"))
                    .unwrap_or_default());
            }
            // OpenSSL also separates names with spaces: the words are one list.
            let list = args.join(":");
            let parsed = parse_cipher_list(&list)?;
            tls.ciphers = Some(list);
            if parsed.skipped.is_empty() {
                String::new()
            } else {
                format!(
                    "ssl_ciphers: ignored {} (rustls offers only ECDHE key exchange with AES-GCM \
                     or ChaCha20-Poly1305)\n",
                    parsed.skipped.join(", ")
                )
            }
        }
        SslCommand::Option => {
            let name = one(
                which,
                args,
                "an option (no_tlsv1.2, no_tlsv1.3, cipher_server_preference)",
            )?;
            let mut versions = tls.versions;
            match parse_ssl_option(name)? {
                SslOption::NoTls12 => versions.tls12 = false,
                SslOption::NoTls13 => versions.tls13 = false,
                SslOption::ServerPreference => tls.server_preference = true,
                SslOption::Moot(why) => return Ok(format!("ssl_option {name}: moot, {why}\n")),
            }
            if !versions.tls12 && !versions.tls13 {
                return Err(ApplyError::Invalid {
                    token: name.to_string(),
                    reason: "would turn off both TLS 1.2 and TLS 1.3".to_string(),
                });
            }
            tls.versions = versions;
            String::new()
        }
        SslCommand::SniPath => {
            tls.sni_path = Some(one(which, args, "a directory of NAME.crt/NAME.key files")?.into());
            String::new()
        }
        SslCommand::OcspResponse => {
            tls.ocsp_response = Some(one(which, args, "a DER OCSP response file")?.into());
            String::new()
        }
        SslCommand::ClientRenegotiationInterval => {
            let n = one(which, args, "a number of seconds")?;
            let secs = n.parse().map_err(|_| ParseError::BadArgument {
                token: n.to_string(),
                expected: "a number of seconds",
            })?;
            // Kept for `write`; rustls never renegotiates, so there is nothing to limit.
            tls.renegotiation_interval = Some(secs);
            String::new()
        }
        SslCommand::Reload => return Err(ApplyError::NotSupported(which.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tls: &mut TlsOptions, which: SslCommand, args: &[&str]) -> Result<String, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        apply(tls, which, &args).map_err(|e| e.to_string())
    }

    #[test]
    fn commands_change_the_options_and_errors_name_the_token() {
        let mut t = TlsOptions::new("c.pem", None);
        assert_eq!(
            run(&mut t, SslCommand::Ciphers, &["HIGH:!aNULL"]),
            Ok(String::new())
        );
        assert_eq!(t.ciphers.as_deref(), Some("HIGH:!aNULL"));
        assert_eq!(
            run(&mut t, SslCommand::Ciphers, &[]),
            Ok("HIGH:!aNULL\n".into())
        );
        let note = run(
            &mut t,
            SslCommand::Ciphers,
            &["ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA"],
        );
        assert!(note.unwrap().contains("ignored AES128-SHA"));
        let e = run(&mut t, SslCommand::Ciphers, &["NOPE"]).unwrap_err();
        assert!(e.contains("'NOPE'"), "{e}");
        assert_eq!(
            run(&mut t, SslCommand::Option, &["no_tlsv1.2"]),
            Ok(String::new())
        );
        assert!(!t.versions.tls12);
        let e = run(&mut t, SslCommand::Option, &["no_tlsv1.3"]).unwrap_err();
        assert!(e.contains("both"), "{e}");
        assert!(t.versions.tls13, "a refused option changes nothing");
        assert!(run(&mut t, SslCommand::Option, &["no_sslv3"])
            .unwrap()
            .contains("moot"));
        assert!(run(&mut t, SslCommand::Option, &[])
            .unwrap_err()
            .contains("needs"));
        run(&mut t, SslCommand::SniPath, &["/etc/pen/sni"]).unwrap();
        assert_eq!(t.sni_path, Some("/etc/pen/sni".into()));
        run(&mut t, SslCommand::ClientRenegotiationInterval, &["60"]).unwrap();
        assert_eq!(t.renegotiation_interval, Some(60));
        let e = run(&mut t, SslCommand::ClientRenegotiationInterval, &["x"]).unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        let e = run(&mut t, SslCommand::OcspResponse, &["a", "b"]).unwrap_err();
        assert!(e.contains("'b'"), "{e}");
    }
}
