//! How the bytes of one `#[repr(C)]` value become a kernel's arguments after the producer
//! pointer (the plugin's `GpuProducerSpec<A>`): the value is the C struct whose fields are the
//! parameters its PTX declares (`params.rs`), so each is read at the offset that struct gives it.

use super::arg::{ArgBytes, KernelArg};
use super::params::{Entries, Param};
use crate::Error;

/// How the bytes of one `#[repr(C)]` value become a kernel's arguments after the producer
/// pointer: the value is the C struct whose fields are those parameters, in order, so each
/// parameter is read at the offset that struct gives it (the plugin's `GpuProducerSpec<A>`).
#[derive(Debug, Clone)]
pub(crate) struct ArgSplit {
    /// Per parameter after the producer pointer: its byte offset in the value, and itself.
    fields: Vec<(usize, Param)>,
}

impl ArgSplit {
    /// The split of a value of `size` bytes aligned to `align` into the parameters `ptx`
    /// declares for `entry` after the producer pointer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `ptx` has no such entry or its parameter list cannot be
    /// read, its first parameter is not a pointer, or the struct of the other parameters is not
    /// `size` bytes aligned to `align`.
    pub(crate) fn new(ptx: &str, entry: &str, size: usize, align: usize) -> Result<Self, Error> {
        let entries = Entries::parse(ptx);
        let params = entries.params(entry)?;
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
    use super::ArgSplit;
    use crate::cuda::params::tests::PTX;
    use crate::cuda::params::Entries;
    use crate::cuda::KernelArg;

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
        assert!(Entries::parse(PTX).check("step", &args).is_ok());
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

    #[test]
    fn an_entry_whose_list_cannot_be_read_is_refused() {
        let ptx = ".visible .entry odd(\n\t.param .u64 odd_param_0,\n\t.param .b128 odd_param_1\n)\n{\n\tret;\n}\n";
        match ArgSplit::new(ptx, "odd", 16, 16) {
            Err(crate::Error::InvalidConfig(why)) => {
                assert!(
                    why.contains("`odd`") && why.contains("cannot be read"),
                    "{why}"
                );
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}
