//! A kernel's parameter list as its PTX declares it, and the check of a launch's arguments
//! against it (count, sizes, and the alignment a by-value struct declares).
//!
//! NVRTC's PTX spells each `extern "C"` entry point as
//! `.entry name(.param .u64 name_param_0, .param .align 8 .b8 name_param_1[24], ...)`: the
//! scalar's type gives its size, a by-value struct is a byte array with its alignment. A launch
//! whose arguments disagree would make the driver read the wrong bytes for every parameter after
//! the first difference, so it is refused before it reaches the driver.

use std::collections::HashMap;

#[cfg(any(feature = "bevy", test))]
use super::arg::ArgBytes;
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

/// One parameter's declaration, the text after `.param` (`.align 8 .b8 x[24]`).
fn param(decl: &str) -> Option<Param> {
    let mut tokens = decl.split_whitespace();
    let mut align = None;
    let mut size = None;
    while let Some(token) = tokens.next() {
        if token == ".align" {
            align = tokens.next()?.parse().ok();
        } else if let Some(bytes) = type_size(token) {
            size = Some(bytes);
        } else if !token.starts_with('.') {
            // The name, with `[count]` for an array.
            return Some(match token.split_once('[') {
                Some((_, rest)) => Param {
                    size: size? * rest.trim_end_matches(']').parse::<usize>().ok()?,
                    align,
                },
                None => Param {
                    size: size?,
                    align: None,
                },
            });
        }
        // Other qualifiers (`.ptr`, `.global`, state spaces) say nothing about the size.
    }
    None
}

/// Every `.entry` of `ptx` with its parameters; an entry whose list cannot be read is left out
/// (its launches are then not checked).
pub(crate) fn entries(ptx: &str) -> HashMap<String, Vec<Param>> {
    let mut found = HashMap::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry") {
        rest = &rest[at + ".entry".len()..];
        let Some(open) = rest.find('(') else { break };
        let name = rest[..open].trim();
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let list = &rest[open + 1..open + close];
        rest = &rest[open + close..];
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        let params: Option<Vec<Param>> = list
            .split(',')
            .map(|decl| decl.split("//").next().unwrap_or("").trim())
            .filter(|decl| !decl.is_empty())
            .map(|decl| decl.strip_prefix(".param").and_then(param))
            .collect();
        if let Some(params) = params {
            found.insert(name.to_owned(), params);
        }
    }
    found
}

/// Checks a launch of `entry` with the producer handle then `args` against `params`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming the first parameter that disagrees, or the counts.
pub(crate) fn check(entry: &str, params: &[Param], args: &[KernelArg]) -> Result<(), Error> {
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

/// How the bytes of one `#[repr(C)]` value become a kernel's arguments after the producer
/// pointer: the value is the C struct whose fields are those parameters, in order, so each
/// parameter is read at the offset that struct gives it (the plugin's `GpuProducerSpec<A>`).
#[cfg(any(feature = "bevy", test))]
#[derive(Debug, Clone)]
pub(crate) struct ArgSplit {
    /// Per parameter after the producer pointer: its byte offset in the value, and itself.
    fields: Vec<(usize, Param)>,
}

#[cfg(any(feature = "bevy", test))]
impl ArgSplit {
    /// The split of a value of `size` bytes aligned to `align` into the parameters `ptx`
    /// declares for `entry` after the producer pointer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `ptx` has no such entry, its first parameter is not a
    /// pointer, or the struct of the other parameters is not `size` bytes aligned to `align`.
    pub(crate) fn new(ptx: &str, entry: &str, size: usize, align: usize) -> Result<Self, Error> {
        let entries = entries(ptx);
        let Some(params) = entries.get(entry) else {
            return Err(Error::InvalidConfig(format!(
                "the PTX declares no entry point `{entry}` (is it `extern \"C\"`?)"
            )));
        };
        match params.first() {
            Some(first) if first.size == 8 => {}
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "kernel `{entry}`'s first parameter is not the producer pointer \
                     (`const perdix_producer*`)"
                )))
            }
        }
        let mut fields = Vec::with_capacity(params.len() - 1);
        let (mut end, mut max_align) = (0usize, 1usize);
        for param in &params[1..] {
            let field_align = param.align.unwrap_or(param.size).max(1);
            let offset = end.next_multiple_of(field_align);
            fields.push((offset, *param));
            end = offset + param.size;
            max_align = max_align.max(field_align);
        }
        let total = end.next_multiple_of(max_align);
        if (total, max_align) != (size, align) {
            return Err(Error::InvalidConfig(format!(
                "kernel `{entry}`'s {} parameters after the producer pointer make a {total}-byte \
                 struct aligned to {max_align}, but its arguments are {size} bytes aligned to \
                 {align}: declare them as a `#[repr(C)]` struct with the kernel's parameters as \
                 fields, in order",
                fields.len()
            )));
        }
        Ok(Self { fields })
    }

    /// The arguments of an all-zero value.
    pub(crate) fn zeroed(&self) -> Vec<KernelArg> {
        let zeros = vec![0u8; self.fields.last().map_or(0, |(at, p)| at + p.size)];
        self.fields
            .iter()
            .map(|&(at, param)| param_arg(&zeros[at..at + param.size], param))
            .collect()
    }

    /// Overwrites `args` (made by [`zeroed`](Self::zeroed)) with the fields of `value` (of the
    /// size given to [`new`](Self::new)), in place.
    pub(crate) fn fill(&self, value: &[u8], args: &mut [KernelArg]) {
        for (&(at, param), arg) in self.fields.iter().zip(args) {
            arg.overwrite(&value[at..at + param.size]);
        }
    }
}

/// The argument for one parameter from its bytes: a 4- or 8-byte scalar as `U32` / `U64`
/// (their bits are what the kernel reads, whatever its type), anything else as `Value`.
#[cfg(any(feature = "bevy", test))]
fn param_arg(bytes: &[u8], param: Param) -> KernelArg {
    let mut arg = match (bytes.len(), param.align) {
        (4, None) => KernelArg::U32(0),
        (8, None) => KernelArg::U64(0),
        (len, align) => KernelArg::Value(ArgBytes::zeroed(len, align.unwrap_or(len.max(1)))),
    };
    arg.overwrite(bytes);
    arg
}

#[cfg(test)]
mod tests {
    use super::{check, entries, ArgSplit, Param};
    use crate::cuda::KernelArg;

    const PTX: &str = "
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

    #[test]
    fn reads_scalars_structs_and_empty_lists() {
        let found = entries(PTX);
        let p = |size, align| Param { size, align };
        assert_eq!(
            found["step"],
            [p(8, None), p(4, None), p(24, Some(8)), p(4, None)]
        );
        assert_eq!(found["none"], []);
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
    fn an_entry_whose_list_cannot_be_read_is_not_launched_unchecked() {
        // `GpuProducer::function` checks a launch only `if let Some(params) = entries.get(..)`.
        assert!(
            entries(UNREADABLE).contains_key("odd"),
            "an entry whose list cannot be read is left out, so its launch goes unchecked"
        );
    }

    #[test]
    fn refuses_counts_sizes_and_alignments_that_disagree() {
        let params = &entries(PTX)["step"];
        let good = [
            KernelArg::F32(1.0),
            KernelArg::value([1u64, 2, 3]),
            KernelArg::U32(0),
        ];
        assert!(check("step", params, &good).is_ok());
        assert!(check("step", params, &good[..2]).is_err(), "too few");
        let wide = [KernelArg::F64(1.0), good[1].clone(), good[2].clone()];
        assert!(check("step", params, &wide).is_err(), "8 bytes for a float");
        let loose = [
            good[0].clone(),
            KernelArg::value([0u32; 6]),
            good[2].clone(),
        ];
        assert!(
            check("step", params, &loose).is_err(),
            "24 bytes aligned to 4"
        );
        assert!(
            check("none", &entries(PTX)["none"], &[]).is_err(),
            "no handle"
        );
    }

    #[test]
    fn splits_a_repr_c_value_at_the_parameters_offsets() {
        // { float; 24 bytes aligned to 8; unsigned }: offsets 0, 8, 32; 40 bytes, align 8.
        let split = ArgSplit::new(PTX, "step", 40, 8).expect("the layout matches");
        let mut args = split.zeroed();
        let mut value = [0u8; 40];
        value[0..4].copy_from_slice(&1.5f32.to_ne_bytes());
        value[8..16].copy_from_slice(&7u64.to_ne_bytes());
        value[32..36].copy_from_slice(&9u32.to_ne_bytes());
        split.fill(&value, &mut args);
        assert_eq!(args[0], KernelArg::U32(1.5f32.to_bits()));
        assert_eq!(args[1], KernelArg::value([7u64, 0, 0]));
        assert_eq!(args[2], KernelArg::U32(9));
        assert!(check("step", &entries(PTX)["step"], &args).is_ok());
        assert!(
            ArgSplit::new(PTX, "step", 36, 4).is_err(),
            "4-byte fields only"
        );
        assert!(
            ArgSplit::new(PTX, "none", 0, 1).is_err(),
            "no producer pointer"
        );
        assert!(
            ArgSplit::new(PTX, "missing", 0, 1).is_err(),
            "no such entry"
        );
    }
}
