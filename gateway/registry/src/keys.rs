//! The registry's Ed25519 signing key: 32 random bytes, base64 in a 0600 file, made if missing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use std::io::Write;
use std::path::Path;

/// Why the key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file does not hold a base64 32-byte key.
    #[error("{0}: not a base64 Ed25519 key of 32 bytes")]
    Format(String),
    /// No randomness.
    #[error("no secure randomness available")]
    Random,
}

/// Loads the key at `path`, or makes one there (mode 0600) if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::Format(name.clone()))?;
            let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Format(name))?;
            Ok(SigningKey::from_bytes(&arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rustls::crypto::aws_lc_rs::default_provider()
                .secure_random
                .fill(&mut seed)
                .map_err(|_| KeyError::Random)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(name.clone(), e))?;
            }
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(|e| KeyError::Io(name.clone(), e))?;
            f.write_all(STANDARD.encode(seed).as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .and_then(|()| f.sync_all())
                .map_err(|e| KeyError::Io(name, e))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(KeyError::Io(name, e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = super::load_or_create(&p).unwrap();
        let b = super::load_or_create(&p).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&p, "nope").unwrap();
        assert!(super::load_or_create(&p).is_err());
    }
}
