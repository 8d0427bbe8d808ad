//! A kernel's parameter list as its PTX declares it, and the check of a launch's arguments
//! against it (count, sizes, and the alignment a by-value struct declares).
//!
//! NVRTC's PTX spells each `extern "C"` entry point as
//! `.entry name(.param .u64 name_param_0, .param .align 8 .b8 name_param_1[24], ...)`: the
//! scalar's type gives its size, a by-value struct is a byte array with its alignment. A launch
//! whose arguments disagree would make the driver read the wrong bytes for every parameter after
//! the first difference, so it is refused before it reaches the driver; so is a launch of an
//! entry point whose list this parser cannot read all of.

use std::collections::HashMap;

use super::arg::KernelArg;
use crate::Error;

/// One `.param` of an entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Param {
    /// Bytes.
    pub(crate) size: usize,
    /// The `.align` a by-value struct (a byte array) declares; `None` for a scalar, whose
    /// `.align` (on pointers) says nothing about how the argument is passed.
    pub(crate) align: Option<usize>,
}

/// Bytes of a PTX scalar type (`.u64`, `.f32`, `.b8`, `.pred`...), `None` for anything else.
fn type_size(token: &str) -> Option<usize> {
    let bits = token.strip_prefix('.')?;
    if bits == "pred" {
        return Some(1);
    }
    let (kind, width) = bits.split_at(1);
    if !matches!(kind, "u" | "s" | "b" | "f") {
        return None;
    }
    match width {
        "8" => Some(1),
        "16" => Some(2),
        "32" => Some(4),
        "64" => Some(8),
        _ => None,
    }
}

/// Qualifiers of a parameter that say nothing about how it is passed.
const QUALIFIERS: [&str; 5] = [".ptr", ".global", ".const", ".shared", ".local"];

/// One parameter's declaration, the text after `.param` (`.align 8 .b8 x[24]`); `None` for
/// anything this parser does not know all of (a qualifier it does not know, two types, a token
/// after the name): such a list is unreadable, never guessed at.
fn param(decl: &str) -> Option<Param> {
    let mut tokens = decl.split_whitespace();
    let mut align = None;
    let mut size = None;
    while let Some(token) = tokens.next() {
        if token == ".align" {
            align = Some(
                tokens
                    .next()?
                    .parse::<usize>()
                    .ok()
                    .filter(|a| a.is_power_of_two())?,
            );
        } else if let Some(bytes) = type_size(token) {
            if size.replace(bytes).is_some() {
                return None;
            }
        } else if QUALIFIERS.contains(&token) {
            // A pointer's state space: nothing about the size.
        } else if token.starts_with('.') {
            // `.v2`, `.texref`, `.b128`...: not a parameter this check can size.
            return None;
        } else {
            // The name, with `[count]` for an array; nothing may follow it.
            if tokens.next().is_some() {
                return None;
            }
            let size = size?;
            return match token.split_once('[') {
                Some((name, count)) => {
                    let count = count.strip_suffix(']')?.parse::<usize>().ok()?;
                    (!name.is_empty()).then_some(())?;
                    Some(Param {
                        size: size.checked_mul(count)?,
                        align,
                    })
                }
                None => Some(Param { size, align: None }),
            };
        }
    }
    None
}

/// A parameter list, the text between the parentheses of `.entry name(...)`.
fn list(text: &str) -> Declared {
    let text: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    if text.trim().is_empty() {
        return Declared::Params(Vec::new());
    }
    let mut params = Vec::new();
    for decl in text.split(',') {
        let decl = decl.trim();
        let parsed = decl
            .strip_prefix(".param")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .and_then(param);
        match parsed {
            Some(param) => params.push(param),
            None => return Declared::Unreadable(format!("`{decl}`")),
        }
    }
    Declared::Params(params)
}

/// Whether `c` may be part of a PTX identifier.
fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%')
}

/// What a module's PTX declares for one entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declared {
    /// Its parameters, in order.
    Params(Vec<Param>),
    /// A parameter list this parser cannot read; what it could not read.
    Unreadable(String),
}

/// Every `.entry` of a module's PTX, with its parameters, or a note that its list could not be
/// read: no launch goes unchecked because its list did not parse ([`params`](Self::params)
/// refuses it instead).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entries(HashMap<String, Declared>);

impl Entries {
    /// Reads every `.entry name(.param ..., ...)` of `ptx` (an entry with no list, which PTX
    /// allows, takes no parameters).
    pub(crate) fn parse(ptx: &str) -> Self {
        let mut found = HashMap::new();
        let mut rest = ptx;
        while let Some(at) = rest.find(".entry") {
            rest = &rest[at + ".entry".len()..];
            if !rest.starts_with(char::is_whitespace) {
                continue; // `.entry` inside a longer token: not the directive.
            }
            let after = rest.trim_start();
            let name_len = after.find(|c| !ident_char(c)).unwrap_or(after.len());
            let name = &after[..name_len];
            if name.is_empty() {
                continue;
            }
            let tail = after[name_len..].trim_start();
            let declared = match tail.strip_prefix('(') {
                Some(inner) => match inner.find(')') {
                    Some(close) => {
                        rest = &inner[close..];
                        list(&inner[..close])
                    }
                    None => {
                        rest = "";
                        Declared::Unreadable("a list with no closing parenthesis".to_owned())
                    }
                },
                None => {
                    rest = tail;
                    Declared::Params(Vec::new())
                }
            };
            let declared = match found.get(name) {
                Some(_) => Declared::Unreadable("an entry point declared twice".to_owned()),
                None => declared,
            };
            found.insert(name.to_owned(), declared);
        }
        Self(found)
    }

    /// The parameters `entry` declares.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `entry` when the PTX does not declare it, or declares it
    /// with a list that cannot be read (its launches could not be checked, so none is made).
    pub(crate) fn params(&self, entry: &str) -> Result<&[Param], Error> {
        match self.0.get(entry) {
            Some(Declared::Params(params)) => Ok(params),
            Some(Declared::Unreadable(what)) => Err(Error::InvalidConfig(format!(
                "kernel `{entry}`'s parameter list cannot be read from its PTX (at {what}), so \
                 its arguments cannot be checked: it is not launched"
            ))),
            None => Err(Error::InvalidConfig(format!(
                "the PTX declares no entry point `{entry}` (is it `extern \"C\"`?)"
            ))),
        }
    }

    /// Checks a launch of `entry` with the producer handle then `args` (see [`check`]).
    ///
    /// # Errors
    ///
    /// As [`params`](Self::params) and [`check`].
    pub(crate) fn check(&self, entry: &str, args: &[KernelArg]) -> Result<(), Error> {
        check(entry, self.params(entry)?, args)
    }
}

/// Checks a launch of `entry` with the producer handle then `args` against `params`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the first parameter that disagrees, or the counts.
fn check(entry: &str, params: &[Param], args: &[KernelArg]) -> Result<(), Error> {
    if params.len() != args.len() + 1 {
        return Err(Error::InvalidConfig(format!(
            "kernel `{entry}` takes {} parameters, but it is launched with the producer handle \
             and {} arguments",
            params.len(),
            args.len()
        )));
    }
    let handle = params[0];
    if handle.size != 8 {
        return Err(Error::InvalidConfig(format!(
            "kernel `{entry}`'s first parameter is {} bytes, not the producer pointer \
             (`const perdix_producer*`, 8 bytes)",
            handle.size
        )));
    }
    for (idx, (param, arg)) in params[1..].iter().zip(args).enumerate() {
        let (size, align) = (arg.size(), arg.align());
        let align_differs = param.align.is_some_and(|want| want != align);
        if param.size != size || align_differs {
            return Err(Error::InvalidConfig(format!(
                "kernel `{entry}`'s parameter {} is {} bytes{}, but argument {idx} is {size} bytes \
                 aligned to {align}",
                idx + 1,
                param.size,
                param
                    .align
                    .map_or_else(String::new, |a| format!(" aligned to {a}")),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Entries, Param};
    use crate::cuda::KernelArg;
    use crate::Error;

    /// A module with an entry of four parameters (a pointer, a float, a 24-byte struct aligned
    /// to 8, an unsigned) and one with none; the split's tests read it too.
    pub(crate) const PTX: &str = "
.visible .entry step(
	.param .u64 .ptr .align 1 step_param_0,
	.param .f32 step_param_1,
	.param .align 8 .b8 step_param_2[24],
	.param .u32 step_param_3
)
{
	ret;
}
.visible .entry none()
{
	ret;
}
";

    fn p(size: usize, align: Option<usize>) -> Param {
        Param { size, align }
    }

    #[test]
    fn reads_scalars_structs_and_empty_lists() {
        let found = Entries::parse(PTX);
        assert_eq!(
            found.params("step").expect("step"),
            [p(8, None), p(4, None), p(24, Some(8)), p(4, None)]
        );
        assert_eq!(found.params("none").expect("none"), []);
    }

    #[test]
    fn reads_a_list_with_comments_and_an_entry_with_no_list() {
        let ptx = "
.entry bare
.maxntid 32, 1, 1
{
	ret;
}
.visible .entry after(
	// the producer
	.param .u64 after_param_0, // 8 bytes
	.param .u32 after_param_1
)
{
	ret;
}
";
        let found = Entries::parse(ptx);
        assert_eq!(found.params("bare").expect("bare"), []);
        assert_eq!(
            found.params("after").expect("after"),
            [p(8, None), p(4, None)]
        );
    }

    /// The `InvalidConfig` text of `result`, or a panic.
    fn refused<T: core::fmt::Debug>(result: Result<T, Error>) -> String {
        match result {
            Err(Error::InvalidConfig(why)) => why,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    /// An entry whose parameter list this parser cannot read (a 128-bit parameter).
    const UNREADABLE: &str = "
.visible .entry odd(
	.param .u64 odd_param_0,
	.param .b128 odd_param_1
)
{
	ret;
}
";

    #[test]
    fn an_entry_whose_list_cannot_be_read_is_refused_never_launched_unchecked() {
        let found = Entries::parse(UNREADABLE);
        // The check every launch makes (`GpuContext::function`, `GpuProducer::function`), and
        // the one without a GPU (`GpuKernel::check_args`); the plugin's `ArgSplit::new` goes
        // through `params` too (`split.rs`).
        let why = refused(found.check("odd", &[KernelArg::U64(0)]));
        assert!(why.contains("`odd`"), "names the entry: {why}");
        assert!(why.contains("cannot be read"), "{why}");
        assert!(why.contains(".b128"), "shows what it could not read: {why}");
        let why = refused(found.check("missing", &[]));
        assert!(why.contains("no entry point `missing`"), "{why}");
    }

    #[test]
    fn a_list_is_unreadable_when_anything_in_it_is_unknown() {
        for (decl, what) in [
            (".param .v2 .f32 x", "a vector"),
            (".param .u32 .u64 x", "two types"),
            (".param .u32 x y", "a token after the name"),
            (".param .u32 /* n */ x", "a block comment"),
            (
                ".param .align 3 .b8 x[8]",
                "an alignment not a power of two",
            ),
            (".param .b8 x[]", "an array with no count"),
            (".param .texref t", "an opaque type"),
            (".param x", "no type"),
            (".reg .u32 x", "not a parameter"),
            (".param .u64 a,, .param .u32 b", "an empty declaration"),
        ] {
            let ptx = format!(".entry k(.param .u64 p, {decl})\n{{ ret; }}\n");
            let why = refused(Entries::parse(&ptx).params("k"));
            assert!(why.contains("cannot be read"), "{what}: {why}");
        }
        let unclosed = Entries::parse(".entry k(.param .u64 p, .param .u32 n\n");
        assert!(refused(unclosed.params("k")).contains("no closing parenthesis"));
        let twice = Entries::parse(".entry k()\n{ ret; }\n.entry k(.param .u64 p)\n{ ret; }\n");
        assert!(refused(twice.params("k")).contains("declared twice"));
    }

    #[test]
    fn refuses_counts_sizes_and_alignments_that_disagree() {
        let found = Entries::parse(PTX);
        let good = [
            KernelArg::F32(1.0),
            KernelArg::value([1u64, 2, 3]),
            KernelArg::U32(0),
        ];
        assert!(found.check("step", &good).is_ok());
        assert!(found.check("step", &good[..2]).is_err(), "too few");
        let wide = [KernelArg::F64(1.0), good[1].clone(), good[2].clone()];
        assert!(found.check("step", &wide).is_err(), "8 bytes for a float");
        let loose = [
            good[0].clone(),
            KernelArg::value([0u32; 6]),
            good[2].clone(),
        ];
        assert!(
            found.check("step", &loose).is_err(),
            "24 bytes aligned to 4"
        );
        assert!(found.check("none", &[]).is_err(), "no handle");
    }
}
