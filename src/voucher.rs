//! Voucher codes and the secrets that sign them.
//!
//! This module owns the printed bearer-code format (version, key id, serial and
//! a truncated, domain-separated HMAC-SHA256 tag, written in Crockford base32
//! with a check symbol), the key ring that signs new codes and verifies old ones
//! across rotations, the key file beside the database that holds every secret
//! of a deployment, and QR rendering. Nothing here touches the database: a
//! forged or mistyped code is turned away before any lookup.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Format version carried in byte 0 of every code.
pub const CODE_VERSION: u8 = 1;
/// Width of a voucher serial.
pub const SERIAL_BITS: u32 = 48;

const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;
const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 7;
const SIGNED_LEN: usize = 8;
const PAYLOAD_LEN: usize = SIGNED_LEN + TAG_LEN;
const DATA_CHARS: usize = 24;
const CODE_CHARS: usize = DATA_CHARS + 1;
const GROUP_LEN: usize = 5;
const CHECK_MODULUS: u128 = 37;
/// Separates voucher tags from any other use a deployment might make of an HMAC
/// key, so a tag can never be replayed as some other signature.
const TAG_DOMAIN: &[u8] = b"hongxin/voucher/v1\0";
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECK_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";
const QR_MIN_PX: u32 = 200;
const KEY_FILE_HEADER: &str = "\
# hongxin secrets: voucher signing keys and the signed-link secret.
# Keep this file private (mode 0600), back it up with the database and never
# commit it. Losing a voucher key invalidates every code it signed.
";

type HmacSha256 = Hmac<Sha256>;
type Secret = [u8; SECRET_LEN];

/// Why a typed or scanned code was turned away.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VoucherCodeError {
    #[error("not a voucher code: expected 25 characters from the voucher alphabet")]
    Malformed,
    #[error("check character does not match: probably a typing error")]
    Typo,
    /// Wrong version, unknown or retired key, or a bad tag: deliberately one
    /// variant so that a caller probing codes learns nothing about which.
    #[error("voucher code is not valid")]
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("key file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("no voucher key with id {0}")]
    UnknownKey(u8),
    #[error("cannot retire the only active voucher key: rotate first")]
    LastActiveKey,
    #[error("no free voucher key id: all of 1..=255 are in use")]
    Full,
    #[error("voucher key id {0} appears more than once")]
    DuplicateId(u8),
    #[error("voucher key id 0 is reserved: ids run from 1 to 255")]
    ReservedId,
    #[error("no active voucher key: at least one key must not be retired")]
    NoActiveKey,
    #[error(
        "key file {path} can be read by other users (mode {mode:o}): its secrets sign vouchers and \
         card links; run `chmod 600 {path}` and start again"
    )]
    OpenToOthers { path: PathBuf, mode: u32 },
}

/// One signing key. Retired keys stay in the ring so their id is never handed
/// out again, which would make old codes verify against the wrong secret.
#[derive(Clone)]
pub struct VoucherKey {
    pub id: u8,
    secret: Secret,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl VoucherKey {
    fn fresh(id: u8) -> VoucherKey {
        VoucherKey {
            id,
            secret: random_secret(),
            created_at: Utc::now(),
            retired_at: None,
        }
    }

    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }
}

impl fmt::Debug for VoucherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoucherKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<redacted>"))
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// The voucher keys of a deployment, oldest first.
///
/// Invariants: ids are unique and in 1..=255, and `keys[active]` is the last
/// key that is not retired, so `active()` cannot fail.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<VoucherKey>,
    active: usize,
}

impl KeyRing {
    /// One fresh active key with id 1.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn generate() -> KeyRing {
        KeyRing {
            keys: vec![VoucherKey::fresh(1)],
            active: 0,
        }
    }

    /// The key that signs new codes: the newest key that is not retired.
    pub fn active(&self) -> &VoucherKey {
        &self.keys[self.active]
    }

    /// Every key, retired ones included, oldest first.
    pub fn keys(&self) -> &[VoucherKey] {
        &self.keys
    }

    /// Adds a fresh key that signs from now on and returns its id. Older keys
    /// keep verifying until retired.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn rotate(&mut self) -> Result<u8, KeyError> {
        let id = self.free_id().ok_or(KeyError::Full)?;
        self.keys.push(VoucherKey::fresh(id));
        self.active = self.keys.len() - 1;
        Ok(id)
    }

    /// Stops a key from verifying. Retiring a retired key is a no-op, so its
    /// original retirement time is kept.
    pub fn retire(&mut self, id: u8) -> Result<(), KeyError> {
        let idx = self
            .keys
            .iter()
            .position(|k| k.id == id)
            .ok_or(KeyError::UnknownKey(id))?;
        if self.keys[idx].is_retired() {
            return Ok(());
        }
        let next_active = (0..self.keys.len())
            .rev()
            .find(|&i| i != idx && !self.keys[i].is_retired())
            .ok_or(KeyError::LastActiveKey)?;
        self.keys[idx].retired_at = Some(Utc::now());
        self.active = next_active;
        Ok(())
    }

    /// Builds a ring from secrets supplied by configuration, oldest first: the
    /// last one not retired signs new codes.
    pub fn from_secrets(keys: Vec<(u8, [u8; 32], bool)>) -> Result<KeyRing, KeyError> {
        let now = Utc::now();
        KeyRing::from_keys(
            keys.into_iter()
                .map(|(id, secret, retired)| VoucherKey {
                    id,
                    secret,
                    created_at: now,
                    retired_at: retired.then_some(now),
                })
                .collect(),
        )
    }

    fn from_keys(keys: Vec<VoucherKey>) -> Result<KeyRing, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            if key.id == 0 {
                return Err(KeyError::ReservedId);
            }
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyError::DuplicateId(key.id));
            }
        }
        let active = keys
            .iter()
            .rposition(|k| !k.is_retired())
            .ok_or(KeyError::NoActiveKey)?;
        Ok(KeyRing { keys, active })
    }

    /// Prefers the id after the highest so ids grow with age; only a ring that
    /// has reached 255 falls back to a gap left by keys dropped from config.
    fn free_id(&self) -> Option<u8> {
        let highest = self.keys.iter().map(|k| k.id).max().unwrap_or(0);
        highest
            .checked_add(1)
            .or_else(|| (1..=u8::MAX).find(|id| self.keys.iter().all(|k| k.id != *id)))
    }

    fn verifying_key(&self, id: u8) -> Option<&VoucherKey> {
        self.keys.iter().find(|k| k.id == id && !k.is_retired())
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active().id)
            .field("keys", &self.keys)
            .finish()
    }
}

/// The file beside the database holding every secret of a deployment.
pub struct KeyFile {
    pub vouchers: KeyRing,
    link_secret: Secret,
    /// Keys the stored hashes of short secrets (till pairing codes, household PINs), so that a
    /// copy of the database alone cannot be searched through their few values.
    short_secret_key: Secret,
    /// The link secret before the last rotation, verifying old cards until `previous_until`.
    previous_link: Option<(Secret, DateTime<Utc>)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileRepr {
    link_secret: String,
    /// Absent from files written before it existed: then derived from the link secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    short_secret_key: Option<String>,
    /// The link secret replaced by `hongxin keys rotate-links`, and until when it still verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_link_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_link_until: Option<DateTime<Utc>>,
    voucher_keys: Vec<KeyRepr>,
}

// Unknown fields are refused so that a misspelt `retired_at` cannot silently
// leave a compromised key verifying.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRepr {
    id: u8,
    secret: String,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<DateTime<Utc>>,
}

impl KeyFile {
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn generate() -> KeyFile {
        KeyFile {
            vouchers: KeyRing::generate(),
            link_secret: random_secret(),
            short_secret_key: random_secret(),
            previous_link: None,
        }
    }

    /// The link secrets that verify residents' card links at `now`: the current one, and the
    /// one before it until its grace period ends.
    pub fn link_secrets_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.link_secret).chain(
            self.previous_link
                .as_ref()
                .filter(|(_, until)| *until > now)
                .map(|(secret, _)| secret),
        )
    }

    /// When the previous link secret stops verifying, if there is one.
    pub fn previous_link_until(&self) -> Option<DateTime<Utc>> {
        self.previous_link.as_ref().map(|(_, until)| *until)
    }

    /// A new link secret signs every card link from now on; the old one verifies the cards
    /// already printed for `grace` more, then no more.
    pub fn rotate_link_secret(&mut self, grace: chrono::Duration) {
        let old = std::mem::replace(&mut self.link_secret, random_secret());
        self.previous_link = Some((old, Utc::now() + grace));
    }

    pub fn link_secret(&self) -> &[u8; 32] {
        &self.link_secret
    }

    pub fn short_secret_key(&self) -> &[u8; 32] {
        &self.short_secret_key
    }

    /// Loads the key file; one that other users could read (or write) is refused.
    pub fn load(path: &Path) -> Result<KeyFile, KeyError> {
        let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        let file = KeyFile::from_toml(&text).map_err(|reason| KeyError::Parse {
            path: path.to_owned(),
            reason,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path)
                .map_err(|e| io_error(path, e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::OpenToOthers {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        Ok(file)
    }

    /// Replaces the file atomically, so a crash mid-write never leaves a
    /// deployment without its keys.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let tmp = self.write_temp(path)?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(path, e));
        }
        sync_parent(path);
        Ok(())
    }

    /// Loads the key file, or creates it on first start. The bool is true when
    /// the file was created.
    pub fn load_or_create(path: &Path) -> Result<(KeyFile, bool), KeyError> {
        match KeyFile::load(path) {
            Ok(file) => return Ok((file, false)),
            Err(KeyError::Io { ref source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let fresh = KeyFile::generate();
        if fresh.save_new(path)? {
            Ok((fresh, true))
        } else {
            // Another process created it first; its keys may already have
            // signed codes, so they win.
            Ok((KeyFile::load(path)?, false))
        }
    }

    /// Like `save`, but never replaces an existing file: a hard link fails
    /// atomically where a rename would clobber a concurrent first start.
    fn save_new(&self, path: &Path) -> Result<bool, KeyError> {
        let tmp = self.write_temp(path)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_parent(path);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(path, e)),
        }
    }

    fn write_temp(&self, path: &Path) -> Result<PathBuf, KeyError> {
        let text = self.to_toml().map_err(|reason| KeyError::Parse {
            path: path.to_owned(),
            reason,
        })?;
        let name = path.file_name().ok_or_else(|| KeyError::Parse {
            path: path.to_owned(),
            reason: "not a file path".to_owned(),
        })?;
        let mut suffix = [0u8; 8];
        os_random(&mut suffix);
        let tmp = parent_dir(path).join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            hex::encode(suffix)
        ));

        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| io_error(&tmp, e))?;
        let written = restrict_permissions(&file)
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(io_error(&tmp, e));
        }
        Ok(tmp)
    }

    fn to_toml(&self) -> Result<String, String> {
        let repr = KeyFileRepr {
            link_secret: hex::encode(self.link_secret),
            short_secret_key: Some(hex::encode(self.short_secret_key)),
            previous_link_secret: self.previous_link.as_ref().map(|(s, _)| hex::encode(s)),
            previous_link_until: self.previous_link.as_ref().map(|(_, until)| *until),
            voucher_keys: self
                .vouchers
                .keys()
                .iter()
                .map(|k| KeyRepr {
                    id: k.id,
                    secret: hex::encode(k.secret),
                    created_at: k.created_at,
                    retired_at: k.retired_at,
                })
                .collect(),
        };
        let body = toml::to_string(&repr).map_err(|e| format!("cannot serialise: {e}"))?;
        Ok(format!("{KEY_FILE_HEADER}\n{body}"))
    }

    fn from_toml(text: &str) -> Result<KeyFile, String> {
        let repr: KeyFileRepr = toml::from_str(text).map_err(|e| e.to_string())?;
        let link_secret =
            parse_secret(&repr.link_secret).map_err(|e| format!("link_secret: {e}"))?;
        let short_secret_key = match &repr.short_secret_key {
            Some(hexed) => parse_secret(hexed).map_err(|e| format!("short_secret_key: {e}"))?,
            None => derived_short_secret_key(&link_secret),
        };
        let previous_link = match (&repr.previous_link_secret, repr.previous_link_until) {
            (Some(hexed), Some(until)) => Some((
                parse_secret(hexed).map_err(|e| format!("previous_link_secret: {e}"))?,
                until,
            )),
            (None, None) => None,
            _ => return Err("previous_link_secret and previous_link_until go together".to_string()),
        };
        let keys = repr
            .voucher_keys
            .into_iter()
            .map(|k| {
                let secret =
                    parse_secret(&k.secret).map_err(|e| format!("voucher key {}: {e}", k.id))?;
                Ok(VoucherKey {
                    id: k.id,
                    secret,
                    created_at: k.created_at,
                    retired_at: k.retired_at,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let vouchers = KeyRing::from_keys(keys).map_err(|e| e.to_string())?;
        Ok(KeyFile {
            vouchers,
            link_secret,
            short_secret_key,
            previous_link,
        })
    }
}

/// The short-secret key of a key file written before it had one: fixed by its link secret, and
/// written out explicitly at the next save so that rotating the link secret keeps it.
fn derived_short_secret_key(link_secret: &[u8; 32]) -> Secret {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(link_secret).expect("any key length");
    mac.update(b"hongxin/short-secret-key/v1");
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("vouchers", &self.vouchers)
            .field("link_secret", &format_args!("<redacted>"))
            .field("short_secret_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// A parsed or freshly issued voucher code. `Debug` hides the tag because the
/// tag plus the visible fields are the bearer code itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VoucherCode {
    version: u8,
    key_id: u8,
    serial: u64,
    tag: [u8; TAG_LEN],
}

impl VoucherCode {
    /// Signs `serial` with the ring's active key. Only the low 48 bits of
    /// `serial` are used.
    pub fn issue(ring: &KeyRing, serial: u64) -> VoucherCode {
        debug_assert!(serial <= SERIAL_MASK, "serial {serial} exceeds 48 bits");
        let key = ring.active();
        let mut code = VoucherCode {
            version: CODE_VERSION,
            key_id: key.id,
            serial: serial & SERIAL_MASK,
            tag: [0; TAG_LEN],
        };
        let full = tag_mac(&key.secret, &code.signed_bytes())
            .finalize()
            .into_bytes();
        code.tag.copy_from_slice(&full[..TAG_LEN]);
        code
    }

    /// The code of an already issued voucher, re-derived from its serial and the key it was
    /// issued under (the database keeps only those). `None` once that key is retired.
    pub fn reissue(ring: &KeyRing, key_id: u8, serial: u64) -> Option<VoucherCode> {
        let key = ring.verifying_key(key_id)?;
        let mut code = VoucherCode {
            version: CODE_VERSION,
            key_id,
            serial: serial & SERIAL_MASK,
            tag: [0; TAG_LEN],
        };
        let full = tag_mac(&key.secret, &code.signed_bytes())
            .finalize()
            .into_bytes();
        code.tag.copy_from_slice(&full[..TAG_LEN]);
        Some(code)
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The printed form, `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Parses what a person typed or a scanner read and checks its signature.
    pub fn verify(ring: &KeyRing, input: &str) -> Result<VoucherCode, VoucherCodeError> {
        let code = VoucherCode::parse(input)?;
        let key = ring
            .verifying_key(code.key_id)
            .filter(|_| code.version == CODE_VERSION);
        // A MAC is computed even without a usable key so that every rejection
        // after the check character costs the same.
        let secret = key.map_or(&[0u8; SECRET_LEN], |k| &k.secret);
        let tag_ok = tag_mac(secret, &code.signed_bytes())
            .verify_truncated_left(&code.tag)
            .is_ok();
        if tag_ok && key.is_some() {
            Ok(code)
        } else {
            Err(VoucherCodeError::Invalid)
        }
    }

    fn parse(input: &str) -> Result<VoucherCode, VoucherCodeError> {
        let mut value: u128 = 0;
        let mut data_chars = 0;
        let mut check = None;
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            if data_chars < DATA_CHARS {
                value = (value << 5) | u128::from(data_digit(c)?);
                data_chars += 1;
            } else if check.is_none() {
                check = Some(check_digit(c)?);
            } else {
                return Err(VoucherCodeError::Malformed);
            }
        }
        let check = check.ok_or(VoucherCodeError::Malformed)?;
        if value % CHECK_MODULUS != u128::from(check) {
            return Err(VoucherCodeError::Typo);
        }
        Ok(VoucherCode::from_value(value))
    }

    fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = self.serial.to_be_bytes();
        // The serial's top two bytes are always zero, so they carry the header.
        out[0] = self.version;
        out[1] = self.key_id;
        out
    }

    fn value(&self) -> u128 {
        let mut bytes = [0u8; 16];
        bytes[1..1 + SIGNED_LEN].copy_from_slice(&self.signed_bytes());
        bytes[1 + SIGNED_LEN..].copy_from_slice(&self.tag);
        u128::from_be_bytes(bytes)
    }

    fn from_value(value: u128) -> VoucherCode {
        let bytes = value.to_be_bytes();
        let payload = &bytes[16 - PAYLOAD_LEN..];
        let mut serial = [0u8; 8];
        serial[2..].copy_from_slice(&payload[2..SIGNED_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&payload[SIGNED_LEN..]);
        VoucherCode {
            version: payload[0],
            key_id: payload[1],
            serial: u64::from_be_bytes(serial),
            tag,
        }
    }

    fn chars(&self) -> [u8; CODE_CHARS] {
        let value = self.value();
        let mut out = [0u8; CODE_CHARS];
        for (i, c) in out[..DATA_CHARS].iter_mut().enumerate() {
            let shift = 5 * (DATA_CHARS - 1 - i);
            *c = ALPHABET[((value >> shift) & 0x1f) as usize];
        }
        out[DATA_CHARS] = CHECK_ALPHABET[(value % CHECK_MODULUS) as usize];
        out
    }
}

impl fmt::Display for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.chars().iter().enumerate() {
            if i > 0 && i % GROUP_LEN == 0 {
                f.write_str("-")?;
            }
            write!(f, "{}", char::from(*c))?;
        }
        Ok(())
    }
}

impl fmt::Debug for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoucherCode")
            .field("version", &self.version)
            .field("key_id", &self.key_id)
            .field("serial", &self.serial)
            .field("tag", &format_args!("<redacted>"))
            .finish()
    }
}

/// 48 random bits from the operating system, never 0 so that 0 can stay free
/// as a sentinel.
///
/// # Panics
/// If the operating system's random number generator fails.
pub fn random_serial() -> u64 {
    loop {
        let mut bytes = [0u8; 8];
        os_random(&mut bytes);
        let serial = u64::from_be_bytes(bytes) & SERIAL_MASK;
        if serial != 0 {
            return serial;
        }
    }
}

/// A code safe to log: enough to tell codes apart by eye, too little to spend.
/// Input that is too short to be a code is hidden entirely.
pub fn mask_code(code: &str) -> String {
    let chars: Vec<char> = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| {
            // Keeps control characters and look-alikes out of log lines.
            if c.is_ascii_graphic() {
                c.to_ascii_uppercase()
            } else {
                '?'
            }
        })
        .collect();
    if chars.len() < 2 * GROUP_LEN {
        return "…".to_owned();
    }
    let head: String = chars[..GROUP_LEN].iter().collect();
    let tail: String = chars[chars.len() - GROUP_LEN..].iter().collect();
    format!("{head}-…-{tail}")
}

/// An SVG QR code of `code`, medium error correction, with a quiet zone.
/// Input too long for any QR code (over about 2 KB) gives a blank square
/// rather than an error, since printed codes are always 29 characters.
pub fn qr_svg(code: &str) -> String {
    match QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M) {
        Ok(qr) => qr
            .render::<svg::Color<'_>>()
            .min_dimensions(QR_MIN_PX, QR_MIN_PX)
            .quiet_zone(true)
            .build(),
        Err(_) => format!(
            concat!(
                r#"<?xml version="1.0" standalone="yes"?>"#,
                r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{0}" height="{0}">"#,
                r##"<rect x="0" y="0" width="{0}" height="{0}" fill="#fff"/></svg>"##
            ),
            QR_MIN_PX
        ),
    }
}

fn tag_mac(secret: &Secret, signed: &[u8; SIGNED_LEN]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(TAG_DOMAIN);
    mac.update(signed);
    mac
}

fn data_digit(c: char) -> Result<u8, VoucherCodeError> {
    let c = match c.to_ascii_uppercase() {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    symbol_index(ALPHABET, c)
}

fn check_digit(c: char) -> Result<u8, VoucherCodeError> {
    symbol_index(CHECK_ALPHABET, c.to_ascii_uppercase())
}

fn symbol_index(alphabet: &[u8], c: char) -> Result<u8, VoucherCodeError> {
    alphabet
        .iter()
        .position(|&a| char::from(a) == c)
        .and_then(|i| u8::try_from(i).ok())
        .ok_or(VoucherCodeError::Malformed)
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    let mut secret = [0u8; SECRET_LEN];
    hex::decode_to_slice(text.trim(), &mut secret)
        .map_err(|e| format!("secret must be {} hex digits: {e}", 2 * SECRET_LEN))?;
    Ok(secret)
}

fn random_secret() -> Secret {
    let mut secret = [0u8; SECRET_LEN];
    os_random(&mut secret);
    secret
}

/// Straight from the OS rather than a userspace generator: these bytes become
/// long-lived keys and serials that must not be guessable.
fn os_random(buf: &mut [u8]) {
    if let Err(e) = rand::rngs::OsRng.try_fill_bytes(buf) {
        panic!("operating system random number generator failed: {e}");
    }
}

fn io_error(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn restrict_permissions(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // The open mode is filtered by the umask; set it outright to be exact.
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Best effort: without syncing the directory a crash can lose the rename even
/// though the file's contents reached the disk.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = File::open(parent_dir(path)) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.toml");
        KeyFile::generate().save(&path).expect("save");
        assert!(KeyFile::load(&path).is_ok());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = KeyFile::load(&path).expect_err("a world-readable key file loads");
        assert!(
            matches!(e, KeyError::OpenToOthers { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7; 32];

    fn ring_with(secret: [u8; 32]) -> KeyRing {
        KeyRing::from_secrets(vec![(1, secret, false)]).expect("valid ring")
    }

    fn ungrouped(code: &str) -> String {
        code.chars().filter(|c| *c != '-').collect()
    }

    #[test]
    fn known_answer() {
        let ring = ring_with(SECRET);
        let code = VoucherCode::issue(&ring, 0x0123_4567_89ab);
        // Cross-checked against an independent Python implementation.
        assert_eq!(code.encode(), "040G2-8T5CY-4TP3T-DTNRJ-DG18U");
        assert_eq!(
            VoucherCode::verify(&ring, "040g2 8t5cy 4tp3t dtnrj dgl8u"),
            Ok(code)
        );
        assert_eq!(code.to_string(), code.encode());
        let parsed = VoucherCode::verify(&ring, &code.encode()).expect("verifies");
        assert_eq!(parsed, code);
        assert_eq!(parsed.serial(), 0x0123_4567_89ab);
        assert_eq!(parsed.key_id(), 1);
    }

    #[test]
    fn tag_matches_reference_hmac() {
        let ring = ring_with(SECRET);
        let code = VoucherCode::issue(&ring, 42);
        let mut mac = HmacSha256::new_from_slice(&SECRET).expect("any key length");
        mac.update(b"hongxin/voucher/v1\0");
        mac.update(&[1, 1, 0, 0, 0, 0, 0, 42]);
        assert_eq!(code.tag, mac.finalize().into_bytes()[..7]);
    }

    #[test]
    fn malformed_inputs() {
        let ring = ring_with(SECRET);
        let good = ungrouped(&VoucherCode::issue(&ring, 5).encode());
        for bad in [
            "",
            &good[..24],
            &format!("{good}0"),
            &format!("U{}", &good[1..]),
            &format!("{}é", &good[..24]),
            &format!("{}O", &good[..24]),
        ] {
            assert_eq!(
                VoucherCode::verify(&ring, bad),
                Err(VoucherCodeError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            VoucherCodeError::Typo.to_string(),
            "check character does not match: probably a typing error"
        );
        assert_eq!(
            VoucherCodeError::Invalid.to_string(),
            "voucher code is not valid"
        );
    }

    #[test]
    fn wrong_version_or_unknown_key_is_invalid() {
        let ring = ring_with(SECRET);
        let code = VoucherCode::issue(&ring, 99);
        let other_version = VoucherCode { version: 2, ..code };
        let other_key = VoucherCode { key_id: 9, ..code };
        for forged in [other_version, other_key] {
            assert_eq!(
                VoucherCode::verify(&ring, &forged.encode()),
                Err(VoucherCodeError::Invalid)
            );
        }
    }

    #[test]
    fn rotation_and_retirement() {
        let mut ring = KeyRing::generate();
        assert_eq!(ring.active().id, 1);
        let old = VoucherCode::issue(&ring, random_serial());

        let new_id = ring.rotate().expect("free id");
        assert_eq!(new_id, 2);
        assert_eq!(ring.active().id, 2);
        let new = VoucherCode::issue(&ring, random_serial());
        assert_eq!(new.key_id(), 2);
        assert_eq!(VoucherCode::verify(&ring, &old.encode()), Ok(old));
        assert_eq!(VoucherCode::verify(&ring, &new.encode()), Ok(new));

        ring.retire(1).expect("retire old key");
        assert_eq!(
            VoucherCode::verify(&ring, &old.encode()),
            Err(VoucherCodeError::Invalid)
        );
        assert_eq!(VoucherCode::verify(&ring, &new.encode()), Ok(new));
        assert!(matches!(ring.retire(2), Err(KeyError::LastActiveKey)));
        assert!(matches!(ring.retire(7), Err(KeyError::UnknownKey(7))));
        ring.retire(1).expect("retiring twice is a no-op");

        // A retired id is never handed out again.
        assert_eq!(ring.rotate().expect("free id"), 3);
    }

    #[test]
    fn retiring_the_newest_key_falls_back_to_an_older_active_one() {
        let mut ring = KeyRing::from_secrets(vec![(4, [1; 32], false), (9, [2; 32], false)])
            .expect("valid ring");
        assert_eq!(ring.active().id, 9);
        ring.retire(9).expect("4 is still active");
        assert_eq!(ring.active().id, 4);
    }

    #[test]
    fn ids_run_out_at_255() {
        let mut ring = KeyRing::from_secrets(vec![(254, [1; 32], false)]).expect("valid");
        assert_eq!(ring.rotate().expect("255 is free"), 255);
        assert_eq!(ring.rotate().expect("gap below"), 1);

        let all = (1..=255u8).map(|id| (id, [id; 32], false)).collect();
        let mut full = KeyRing::from_secrets(all).expect("valid");
        assert!(matches!(full.rotate(), Err(KeyError::Full)));
    }

    #[test]
    fn from_secrets_rejects_bad_rings() {
        assert!(matches!(
            KeyRing::from_secrets(vec![]),
            Err(KeyError::NoActiveKey)
        ));
        assert!(matches!(
            KeyRing::from_secrets(vec![(1, SECRET, true)]),
            Err(KeyError::NoActiveKey)
        ));
        assert!(matches!(
            KeyRing::from_secrets(vec![(0, SECRET, false)]),
            Err(KeyError::ReservedId)
        ));
        assert!(matches!(
            KeyRing::from_secrets(vec![(3, SECRET, false), (3, SECRET, false)]),
            Err(KeyError::DuplicateId(3))
        ));
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        let mut file = KeyFile::generate();
        file.vouchers.rotate().expect("free id");
        file.vouchers.retire(1).expect("2 is active");
        file.save(&path).expect("save");

        let loaded = KeyFile::load(&path).expect("load");
        assert_eq!(loaded.link_secret(), file.link_secret());
        assert_eq!(loaded.vouchers.active().id, 2);
        let pairs = loaded.vouchers.keys().iter().zip(file.vouchers.keys());
        for (a, b) in pairs {
            assert_eq!(
                (a.id, a.secret, a.created_at),
                (b.id, b.secret, b.created_at)
            );
            assert_eq!(a.retired_at, b.retired_at);
        }
        assert_eq!(loaded.vouchers.keys().len(), 2);

        let code = VoucherCode::issue(&file.vouchers, 1234);
        assert_eq!(
            VoucherCode::verify(&loaded.vouchers, &code.encode()),
            Ok(code)
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = fs::read_dir(dir.path()).expect("read_dir").count();
        assert_eq!(leftovers, 1, "temporary file left behind");

        let debug = format!("{loaded:?} {:?}", loaded.vouchers.keys()[0]);
        assert!(debug.contains("<redacted>"));
        let mut secrets = vec![hex::encode(loaded.link_secret())];
        secrets.extend(loaded.vouchers.keys().iter().map(|k| hex::encode(k.secret)));
        for secret in secrets {
            assert!(!debug.contains(&secret));
            assert!(!debug.contains(&secret.to_uppercase()));
        }
        // Debug of byte arrays prints decimal, so check that form too.
        assert!(!debug.contains(&format!("{:?}", loaded.link_secret)));
    }

    #[test]
    fn load_or_create_creates_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        let (first, created) = KeyFile::load_or_create(&path).expect("create");
        assert!(created);
        let (second, created) = KeyFile::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(first.link_secret(), second.link_secret());
        assert_eq!(
            first.vouchers.active().secret,
            second.vouchers.active().secret
        );
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1);
    }

    #[test]
    fn load_reports_path_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        let good = KeyFile::generate().to_toml().expect("toml");

        let misspelt = good.replacen(
            "created_at = ",
            "retierd_at = \"2024-01-01T00:00:00Z\"\ncreated_at = ",
            1,
        );
        let short_secret = format!(
            "link_secret = \"abcd\"\n{}",
            &good[good.find("[[").unwrap_or(0)..]
        );
        for text in [misspelt.as_str(), short_secret.as_str(), "not toml ="] {
            fs::write(&path, text).expect("write");
            match KeyFile::load(&path) {
                Err(KeyError::Parse { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(!reason.is_empty());
                }
                other => panic!("expected a parse error, got {other:?}"),
            }
        }
        let missing = dir.path().join("absent.toml");
        assert!(matches!(KeyFile::load(&missing), Err(KeyError::Io { .. })));
    }

    #[test]
    fn mask_code_hides_the_middle() {
        let ring = ring_with(SECRET);
        let code = VoucherCode::issue(&ring, 77).encode();
        let masked = mask_code(&code);
        assert_eq!(masked, format!("{}-…-{}", &code[..5], &code[24..]));
        assert_eq!(mask_code("abc"), "…");
    }

    #[test]
    fn qr_svg_renders() {
        let ring = ring_with(SECRET);
        let svg = qr_svg(&VoucherCode::issue(&ring, 77).encode());
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("</svg>"));
        let blank = qr_svg(&"X".repeat(10_000));
        assert!(blank.contains("</svg>"));
    }

    #[test]
    fn serials_are_48_bit_and_nonzero() {
        for _ in 0..1000 {
            let s = random_serial();
            assert!(s != 0 && s <= SERIAL_MASK);
        }
    }

    proptest! {
        #[test]
        fn round_trip(serial in 0..=SERIAL_MASK, secret in any::<[u8; 32]>(), id in 1..=255u8) {
            let ring = KeyRing::from_secrets(vec![(id, secret, false)]).expect("valid ring");
            let code = VoucherCode::issue(&ring, serial);
            let text = code.encode();
            prop_assert_eq!(text.len(), 29);
            prop_assert_eq!(code.serial(), serial);
            prop_assert_eq!(code.key_id(), id);

            let bare = ungrouped(&text);
            // The check character takes no look-alikes, so leave it alone.
            let (data, check) = text.split_at(text.len() - 1);
            let sloppy: String = data
                .chars()
                .map(|c| match c {
                    '1' => 'l',
                    '0' => 'o',
                    '-' => ' ',
                    other => other.to_ascii_lowercase(),
                })
                .chain(check.to_lowercase().chars())
                .collect();
            let capital_i = bare[..24].replace('1', "I");
            let capital_o = format!("{}{}", bare[..24].replace('0', "O"), &bare[24..]);
            for form in [
                text.clone(),
                text.to_lowercase(),
                bare.clone(),
                format!("  {sloppy}\n"),
                format!("{capital_i}{}", &bare[24..]),
                capital_o,
            ] {
                prop_assert_eq!(VoucherCode::verify(&ring, &form), Ok(code), "{}", form);
            }
        }

        #[test]
        fn single_character_changes_are_caught(serial in 0..=SERIAL_MASK, secret in any::<[u8; 32]>()) {
            let ring = ring_with(secret);
            let code = VoucherCode::issue(&ring, serial);
            let chars: Vec<u8> = ungrouped(&code.encode()).into_bytes();
            for pos in 0..CODE_CHARS {
                let symbols: &[u8] = if pos < DATA_CHARS { ALPHABET } else { CHECK_ALPHABET };
                for &sym in symbols.iter().filter(|&&s| s != chars[pos]) {
                    let mut changed = chars.clone();
                    changed[pos] = sym;
                    let text = String::from_utf8(changed).expect("ascii");
                    // Mod 37 catches every single-symbol change, data or check.
                    prop_assert_eq!(
                        VoucherCode::verify(&ring, &text),
                        Err(VoucherCodeError::Typo),
                        "{}", text
                    );
                }
            }
        }

        #[test]
        fn wrong_tag_with_good_check_is_invalid(
            serial in 0..=SERIAL_MASK,
            secret in any::<[u8; 32]>(),
            bit in 0..(8 * TAG_LEN),
        ) {
            let ring = ring_with(secret);
            let code = VoucherCode::issue(&ring, serial);
            let mut forged = code;
            forged.tag[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(
                VoucherCode::verify(&ring, &forged.encode()),
                Err(VoucherCodeError::Invalid)
            );
            let other_serial = VoucherCode { serial: serial ^ 1, ..code };
            prop_assert_eq!(
                VoucherCode::verify(&ring, &other_serial.encode()),
                Err(VoucherCodeError::Invalid)
            );
        }
    }
}
