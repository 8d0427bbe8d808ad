//! The PTX cache on disk: one file per [`ModuleKey`], named by it, whose first line carries the
//! key and the SHA-256 of the PTX after it, so that a file that is truncated, edited or another
//! kernel's is detected when it is read; files are written whole (a temporary file, then a
//! rename).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::key::{hex, ModuleKey};

/// Where PTX is cached: `$PERDIX_PTX_CACHE`, else `$XDG_CACHE_HOME/perdix-transport/ptx`, else
/// `~/.cache/perdix-transport/ptx`. `PERDIX_PTX_CACHE=off` disables the cache.
pub(super) fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PERDIX_PTX_CACHE") {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("perdix-transport").join("ptx"))
}

/// The cache file of `key`: `<name, sanitized, at most 64 characters>-<key>-<arch>.ptx`.
pub(super) fn cache_path(dir: &Path, name: &str, key: &ModuleKey, arch: &str) -> PathBuf {
    let clean = |text: &str, max: usize| -> String {
        text.chars()
            .take(max)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    dir.join(format!(
        "{}-{}-{}.ptx",
        clean(name, 64),
        key.hex(),
        clean(arch, 32)
    ))
}

/// What starts every cache file's first line.
const MAGIC: &str = "// perdix-transport PTX cache v1";

/// A cache file's first line: what it holds (the key) and the SHA-256 of the PTX after it.
/// A PTX comment, so the file is PTX as it stands.
fn header_line(key: &ModuleKey, ptx: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(ptx).into();
    format!("{MAGIC} key={} sha256={}", key.hex(), hex(&digest))
}

/// The PTX a cache file holds for `key`, or why it is not to be used.
fn verify(file: &[u8], key: &ModuleKey) -> Result<String, &'static str> {
    let Some(newline) = file.iter().position(|&b| b == b'\n') else {
        return Err("no header line");
    };
    let (header, ptx) = (&file[..newline], &file[newline + 1..]);
    if !header.starts_with(MAGIC.as_bytes()) {
        return Err("not a perdix-transport PTX cache file of this version");
    }
    let key_field = format!(" key={} ", key.hex());
    if header.get(MAGIC.len()..MAGIC.len() + key_field.len()) != Some(key_field.as_bytes()) {
        return Err("written for another key (another kernel, options or toolchain)");
    }
    if header != header_line(key, ptx).as_bytes() {
        return Err("its PTX does not match its digest (truncated or edited)");
    }
    String::from_utf8(ptx.to_vec()).map_err(|_| "its PTX is not UTF-8")
}

/// The largest cache file read: far above any kernel's PTX, so a stray huge file at a key's
/// path costs a bounded read.
const MAX_FILE: u64 = 64 << 20;

/// The verified PTX at `path` for `key`: `Ok(None)` when there is no file, `Err` (why) when
/// there is one but it is not to be used.
pub(super) fn load(path: &Path, key: &ModuleKey) -> Result<Option<String>, String> {
    let mut file = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut file));
    match read {
        Ok(_) if file.len() as u64 > MAX_FILE => Err(format!("larger than {MAX_FILE} bytes")),
        Ok(_) => verify(&file, key).map(Some).map_err(str::to_owned),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(format!("unreadable: {err}")),
    }
}

/// Writes the cache file (its header line, then the PTX) atomically: a temporary file of this
/// process and call, then a rename over the old one. Failures only log.
pub(super) fn store(path: &Path, key: &ModuleKey, ptx: &str) {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!(
        "tmp{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let file = format!("{}\n{ptx}", header_line(key, ptx.as_bytes()));
    let result = create_dir(dir)
        .and_then(|()| std::fs::write(&tmp, file))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), %err, "perdix: PTX cache not written");
    }
}

/// Creates the cache directory (and its parents), readable and writable by the user alone on
/// Unix.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::{cache_path, header_line, verify};
    use crate::cuda::key::ModuleKey;

    #[test]
    fn a_cache_file_verifies_only_with_its_key_and_its_ptx() {
        let (key, other) = (ModuleKey::of(b"this kernel"), ModuleKey::of(b"another"));
        let ptx = ".version 9.0\n.target sm_90\n.visible .entry k(\n\t.param .u64 k_param_0\n)\n{\n\tret;\n}\n";
        let file = format!("{}\n{ptx}", header_line(&key, ptx.as_bytes()));
        assert_eq!(verify(file.as_bytes(), &key).as_deref(), Ok(ptx));
        let refused = |bytes: &[u8], key: &ModuleKey| verify(bytes, key).expect_err("refused");
        assert!(refused(file.as_bytes(), &other).contains("another key"));
        assert!(refused(&file.as_bytes()[..file.len() - 3], &key).contains("digest"));
        let edited = file.replacen("ret;", "exit;", 1);
        assert!(refused(edited.as_bytes(), &key).contains("digest"));
        assert!(refused(ptx.as_bytes(), &key).contains("not a perdix-transport"));
        assert!(refused(b"no newline at all", &key).contains("no header line"));
        let foreign = format!("{}\n{ptx}", header_line(&other, ptx.as_bytes()));
        assert!(refused(foreign.as_bytes(), &key).contains("another key"));
        let latin1 = [header_line(&key, &[0xff]).as_bytes(), b"\n\xff"].concat();
        assert!(refused(&latin1, &key).contains("UTF-8"));
    }

    #[test]
    fn a_cache_file_name_is_bounded_and_carries_the_whole_key() {
        let key = ModuleKey::of(b"k");
        let long = format!("{}.cu", "x".repeat(500));
        let path = cache_path(std::path::Path::new("/c"), &long, &key, "sm_90");
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(name.len() < 200, "{name}");
        assert!(
            name.contains(&key.hex()) && name.ends_with("-sm_90.ptx"),
            "{name}"
        );
        let odd = cache_path(std::path::Path::new("/c"), "../../etc/x.cu", &key, "sm_90");
        assert_eq!(
            odd.parent(),
            Some(std::path::Path::new("/c")),
            "stays in the directory"
        );
    }
}
