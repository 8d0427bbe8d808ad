//! NVRTC: a kernel's source to PTX, with headers supplied in memory.
//!
//! cudarc's NVRTC layers create programs without headers, so creating and compiling the program
//! go to `cudarc::nvrtc::sys` here; reading the log and the PTX and destroying the program use
//! cudarc's `result` wrappers. `module.rs` decides the options and caches what comes out.

use std::ffi::{c_char, CString};

use cudarc::nvrtc::{result, sys};

use crate::Error;

/// Whether libnvrtc can be loaded; cudarc panics on first use otherwise.
fn nvrtc_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on candidate names and drops what it opened.
    unsafe { sys::is_culib_present() }
}

/// NVRTC's version, `(major, minor)`; `None` without libnvrtc or when it does not say.
pub(super) fn version() -> Option<(i32, i32)> {
    if !nvrtc_present() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: libnvrtc loads (checked above, so cudarc's loader does not panic); both are valid
    // out-pointers for the call.
    let got = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    (got == sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

fn cstring(text: &str, what: &str) -> Result<CString, Error> {
    CString::new(text).map_err(|_| Error::Compile {
        log: format!("{what} contains a NUL byte"),
    })
}

/// Owns an `nvrtcProgram`; destroys it on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the handle came from `nvrtcCreateProgram` and is destroyed only here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn nvrtc_error(what: &str, code: sys::nvrtcResult) -> Error {
    Error::Compile {
        log: format!("{what} failed: {code:?}"),
    }
}

/// NUL-terminated C text from NVRTC as a `String` (up to the first NUL).
fn text(raw: &[c_char]) -> Vec<u8> {
    raw.iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect()
}

/// Compiles `source` (named `name` in NVRTC's messages) with `opts`; `#include "<name>"` finds
/// each `(name, text)` of `headers` in memory.
///
/// # Errors
///
/// [`Error::NoDevice`] when libnvrtc cannot be loaded; [`Error::Compile`] with NVRTC's log.
pub(super) fn compile(
    source: &str,
    name: &str,
    opts: &[String],
    headers: &[(&str, &str)],
) -> Result<String, Error> {
    if !nvrtc_present() {
        return Err(Error::NoDevice("libnvrtc not found (CUDA 13 NVRTC)"));
    }
    let src = cstring(source, name)?;
    let prog_name = cstring(name, "kernel name")?;
    let names = headers
        .iter()
        .map(|(name, _)| cstring(name, "header name"))
        .collect::<Result<Vec<_>, _>>()?;
    let texts = headers
        .iter()
        .map(|(name, text)| cstring(text, name))
        .collect::<Result<Vec<_>, _>>()?;
    let header_ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let include_names: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let count = i32::try_from(headers.len()).map_err(|_| Error::Compile {
        log: format!("{name}: too many headers"),
    })?;
    let mut raw = core::ptr::null_mut();
    // SAFETY: every pointer is a live NUL-terminated string for the call (`texts` and `names`
    // outlive it); `count` headers and as many include names, as the count says; `raw` is a
    // valid out-pointer.
    let created = unsafe {
        sys::nvrtcCreateProgram(
            &mut raw,
            src.as_ptr(),
            prog_name.as_ptr(),
            count,
            header_ptrs.as_ptr(),
            include_names.as_ptr(),
        )
    };
    if created != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(nvrtc_error("nvrtcCreateProgram", created));
    }
    let program = Program(raw);
    let c_opts = opts
        .iter()
        .map(|o| cstring(o, "option"))
        .collect::<Result<Vec<_>, _>>()?;
    let opt_ptrs: Vec<*const c_char> = c_opts.iter().map(|o| o.as_ptr()).collect();
    // SAFETY: `program.0` is live; `opt_ptrs` holds `len` live NUL-terminated strings (checked
    // for inner NULs above, where cudarc's wrapper would panic).
    let compiled =
        unsafe { sys::nvrtcCompileProgram(program.0, opt_ptrs.len() as i32, opt_ptrs.as_ptr()) };
    let log = program_log(&program);
    if compiled != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::Compile {
            log: format!("{name}: {compiled:?}\n{log}"),
        });
    }
    if !log.trim().is_empty() {
        tracing::debug!(name, log = %log.trim(), "perdix: NVRTC warnings");
    }
    // SAFETY: `program.0` is live and compiled successfully.
    let ptx =
        unsafe { result::get_ptx(program.0) }.map_err(|err| nvrtc_error("nvrtcGetPTX", err.0))?;
    String::from_utf8(text(&ptx)).map_err(|_| Error::Compile {
        log: format!("{name}: NVRTC returned PTX that is not UTF-8"),
    })
}

/// The program's log; empty when NVRTC cannot give it.
fn program_log(program: &Program) -> String {
    // SAFETY: `program.0` is live (compiled or not, NVRTC keeps a log).
    match unsafe { result::get_program_log(program.0) } {
        Ok(log) => String::from_utf8_lossy(&text(&log)).into_owned(),
        Err(_) => String::new(),
    }
}
