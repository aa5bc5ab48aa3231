//! Secrets from the environment: a variable, or a file another variable names (a mounted
//! secret). Environment only, so a secret never shows in a process list; shared by the
//! store's secret and OAuth mode's sealing secrets. Depends on nothing of ours.

use secrecy::SecretString;

/// What every replica's secret should be.
pub(crate) const ADVICE: &str =
    "every replica needs the same random value, e.g. `openssl rand -hex 32`";

/// A secret from `var`, or from the file `file_var` names (a mounted secret), at least
/// `min_bytes` long once trimmed; `None` when neither is set. Environment only, so it never
/// shows in a process list; errors say what to fix and never show the secret.
pub(crate) fn read(
    var: &str,
    file_var: &str,
    min_bytes: usize,
) -> Result<Option<SecretString>, String> {
    let text = match (std::env::var(var).ok(), std::env::var_os(file_var)) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(format!("both {var} and {file_var} are set: keep one")),
        (Some(value), None) => value,
        (None, Some(path)) => {
            // A secret is a line, not a file's worth: a few KiB at most are read.
            use std::io::Read as _;
            const MOST: u64 = 4096;
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|file| file.take(MOST + 1).read_to_string(&mut text))
                .map_err(|e| {
                    format!(
                        "{file_var} names {}, which could not be read as text ({e}): point it \
                         at the file holding the secret",
                        std::path::Path::new(&path).display()
                    )
                })?;
            if text.len() as u64 > MOST {
                return Err(format!(
                    "{file_var} names a file larger than {MOST} bytes: it should hold only the \
                     secret"
                ));
            }
            text
        }
    };
    let text = text.trim();
    if text.len() < min_bytes {
        return Err(format!("{var} is shorter than {min_bytes} bytes: {ADVICE}"));
    }
    Ok(Some(SecretString::from(text.to_owned())))
}
