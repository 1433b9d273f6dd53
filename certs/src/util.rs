//! Small helpers shared by the modules: clock, serials, ASN.1 time conversion, file writes.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};

use crate::error::{CertError, Result};

/// How far in the past validity starts, to tolerate clock skew between machines.
pub(crate) const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// Seconds in a day.
pub(crate) const DAY_SECS: i64 = 86_400;

/// The current time in unix seconds.
pub(crate) fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// An ASN.1 time from unix seconds.
// `time_t` is `i64` here but narrower on some targets, hence the conversion.
#[allow(clippy::useless_conversion)]
pub(crate) fn asn1_from_unix(secs: i64) -> Result<Asn1Time> {
    let t = secs
        .try_into()
        .map_err(|_| CertError::InvalidInput(format!("time {secs} out of range")))?;
    Ok(Asn1Time::from_unix(t)?)
}

/// Unix seconds from an ASN.1 time.
pub(crate) fn asn1_to_unix(t: &Asn1TimeRef) -> Result<i64> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(t)?;
    Ok(i64::from(diff.days) * DAY_SECS + i64::from(diff.secs))
}

/// RFC 3339 rendering of unix seconds (UTC), for humans.
pub(crate) fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

/// Validates a validity period in days: at least 1, at most 100 years.
pub(crate) fn check_days(days: u32) -> Result<()> {
    if days == 0 || days > 36_500 {
        return Err(CertError::InvalidInput(format!(
            "days must be between 1 and 36500, got {days}"
        )));
    }
    Ok(())
}

/// A fresh random positive 128-bit serial number.
pub(crate) fn random_serial() -> Result<BigNum> {
    let mut bn = BigNum::new()?;
    // 127 random bits below a forced top bit: always positive, always 16 bytes of entropy-ish.
    bn.rand(128, MsbOption::ONE, false)?;
    Ok(bn)
}

/// Lower-case hex of a serial number, without leading zeros or separators.
pub(crate) fn serial_hex(serial: &openssl::asn1::Asn1IntegerRef) -> Result<String> {
    let bn = serial.to_bn()?;
    Ok(bn.to_hex_str()?.to_ascii_lowercase())
}

/// Normalises a serial typed by a human: strips `0x`, `:` and leading zeros, lower-cases.
pub(crate) fn normalize_serial(input: &str) -> Result<String> {
    let s = input.trim();
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let cleaned: String = s.chars().filter(|c| *c != ':').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CertError::InvalidInput(format!(
            "serial {input:?} is not hexadecimal"
        )));
    }
    let trimmed = cleaned.trim_start_matches('0');
    Ok(if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_ascii_lowercase()
    })
}

/// An ASN.1 integer from a normalised hex serial.
pub(crate) fn serial_from_hex(hex_serial: &str) -> Result<Asn1Integer> {
    let bn = BigNum::from_hex_str(hex_serial)?;
    Ok(Asn1Integer::from_bn(&bn)?)
}

/// Writes `data` to `path` through a temporary file and a rename, with the given mode.
///
/// The temporary file is created with `mode` from the start, so a private key is never
/// readable by others, even briefly, and an existing file with looser permissions is replaced.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| CertError::io(&tmp, e))?;
        // The mode passed to open() is filtered by the umask; set it explicitly as well.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| CertError::io(&tmp, e))?;
        f.write_all(data).map_err(|e| CertError::io(&tmp, e))?;
        f.sync_all().map_err(|e| CertError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| CertError::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a folder (and its parents).
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| CertError::io(path, e))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| CertError::io(path, e))
}

/// Appends crlEntryExtensions carrying a reasonCode to a DER-encoded `revokedCertificates` entry.
///
/// The openssl crate can build an entry (serial + date) but cannot add entry extensions, so
/// the extension is spliced into the DER: `SEQUENCE { serial, date }` becomes
/// `SEQUENCE { serial, date, SEQUENCE { SEQUENCE { id-ce-cRLReasons, OCTET STRING { ENUMERATED } } } }`.
pub(crate) fn revoked_entry_with_reason(entry_der: &[u8], reason_code: u8) -> Result<Vec<u8>> {
    let bad = || CertError::InvalidInput("unexpected DER for a revoked entry".to_string());
    let (tag, content) = der_split(entry_der).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    // Extension ::= SEQUENCE { extnID 2.5.29.21, extnValue OCTET STRING (ENUMERATED code) }
    let extension = [
        0x30,
        0x0a,
        0x06,
        0x03,
        0x55,
        0x1d,
        0x15,
        0x04,
        0x03,
        0x0a,
        0x01,
        reason_code,
    ];
    let mut extensions = vec![0x30];
    der_push_len(&mut extensions, extension.len());
    extensions.extend_from_slice(&extension);

    let mut inner = content.to_vec();
    inner.extend_from_slice(&extensions);
    let mut out = vec![0x30];
    der_push_len(&mut out, inner.len());
    out.extend_from_slice(&inner);
    Ok(out)
}

/// Splits one DER TLV (single-byte tag) into its tag and content; the input must be exactly one TLV.
fn der_split(der: &[u8]) -> Option<(u8, &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let content = der.get(header..header.checked_add(len)?)?;
    if header + len != der.len() {
        return None;
    }
    Some((tag, content))
}

/// Appends a DER definite length.
fn der_push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalise() {
        assert_eq!(normalize_serial("0x00AB:CD").unwrap(), "abcd");
        assert_eq!(normalize_serial("000").unwrap(), "0");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert!(!a.is_negative());
        assert_ne!(a, b);
        assert_eq!(a.num_bits(), 128);
    }

    #[test]
    fn time_round_trip() {
        let t = asn1_from_unix(1_700_000_000).unwrap();
        assert_eq!(asn1_to_unix(&t).unwrap(), 1_700_000_000);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn der_lengths() {
        let mut v = Vec::new();
        der_push_len(&mut v, 0x7f);
        der_push_len(&mut v, 0x80);
        der_push_len(&mut v, 0x1234);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
        assert!(der_split(&[0x30, 0x01]).is_none());
        assert_eq!(der_split(&[0x30, 0x01, 0x05]), Some((0x30, &[0x05][..])));
    }

    #[test]
    fn days_bounds() {
        assert!(check_days(0).is_err());
        assert!(check_days(1).is_ok());
        assert!(check_days(36_501).is_err());
    }
}
