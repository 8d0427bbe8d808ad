//! `KernelArg`: one argument of a [`GpuKernel`](super::GpuKernel) after the producer pointer,
//! by value: a scalar, a `#[repr(C)]` struct's bytes, or the address of a device buffer.

use cudarc::driver::DevicePtr;

/// One kernel argument after the producer pointer, passed by value as the kernel declares it.
///
/// Scalars come `From` their Rust type (`u32` is `unsigned`, `u64` is `unsigned long long`,
/// `f64` is `double`...); a `#[repr(C)]` struct passed by value is [`KernelArg::value`]; an
/// app's device buffer is its address, a [`KernelArg::U64`] of
/// [`device_address`] (the kernel's `T*`). Making a `KernelArg` is safe: it is a value.
/// Supplying it to a kernel ([`GpuKernel::arg`](super::GpuKernel::arg) and friends) is
/// `unsafe`, because a 64-bit argument may be an address the kernel writes through. Before a
/// launch the arguments are checked against the kernel's parameters as its PTX declares them:
/// the count, each size, and a struct's alignment; a mismatch is
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) and nothing is launched.
///
/// # Examples
///
/// ```
/// use perdix_transport::cuda::KernelArg;
///
/// #[derive(Clone, Copy, bytemuck::NoUninit)]
/// #[repr(C)]
/// struct Box3 { lo: [f32; 3], hi: [f32; 3] } // CUDA: struct Box3 { float lo[3], hi[3]; };
///
/// let arg = KernelArg::value(Box3 { lo: [0.0; 3], hi: [1.0; 3] });
/// assert_eq!((arg.size(), arg.align()), (24, 4));
/// assert_eq!(KernelArg::from(7u64).size(), 8);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KernelArg {
    /// `unsigned int`.
    U32(u32),
    /// `int`.
    I32(i32),
    /// `unsigned long long` (also device addresses).
    U64(u64),
    /// `long long`.
    I64(i64),
    /// `float`.
    F32(f32),
    /// `double`.
    F64(f64),
    /// A by-value `#[repr(C)]` struct (or array): its bytes, made by [`KernelArg::value`].
    Value(ArgBytes),
}

/// The bytes of a by-value argument and the alignment of its type (see [`KernelArg::value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgBytes {
    /// The value's bytes, in 8-byte words so the driver reads them from an aligned buffer.
    words: Box<[u64]>,
    /// Bytes used of `words`.
    len: usize,
    /// `align_of` the value's type.
    align: usize,
}

impl ArgBytes {
    /// The value's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// `len` zero bytes of a type aligned to `align`.
    #[cfg(any(feature = "bevy", test))]
    pub(crate) fn zeroed(len: usize, align: usize) -> Self {
        Self {
            words: vec![0u64; len.div_ceil(8).max(1)].into_boxed_slice(),
            len,
            align,
        }
    }

    /// The first word, whose address is the argument's for the driver (which reads as many
    /// bytes as the kernel's parameter takes: checked against the PTX, or the kernel author's
    /// promise).
    pub(crate) fn first_word(&self) -> &u64 {
        &self.words[0]
    }
}

impl KernelArg {
    /// A by-value argument of a `#[repr(C)]` type with no padding (`bytemuck::NoUninit`), the
    /// twin of the kernel's struct parameter: same fields, order and alignment.
    pub fn value<T: bytemuck::NoUninit>(value: T) -> Self {
        let bytes = bytemuck::bytes_of(&value);
        let mut words = vec![0u64; bytes.len().div_ceil(8).max(1)].into_boxed_slice();
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self::Value(ArgBytes {
            words,
            len: bytes.len(),
            align: core::mem::align_of::<T>(),
        })
    }

    /// Replaces the argument's bits with `bytes` (as long as the argument), keeping its kind.
    #[cfg(any(feature = "bevy", test))]
    pub(crate) fn overwrite(&mut self, bytes: &[u8]) {
        debug_assert_eq!(bytes.len(), self.size());
        let word = |bytes: &[u8]| {
            let mut raw = [0u8; 8];
            raw[..bytes.len()].copy_from_slice(bytes);
            u64::from_ne_bytes(raw)
        };
        match self {
            Self::U32(v) => *v = word(bytes) as u32,
            Self::I32(v) => *v = word(bytes) as u32 as i32,
            Self::F32(v) => *v = f32::from_bits(word(bytes) as u32),
            Self::U64(v) => *v = word(bytes),
            Self::I64(v) => *v = word(bytes) as i64,
            Self::F64(v) => *v = f64::from_bits(word(bytes)),
            Self::Value(value) => {
                bytemuck::cast_slice_mut::<u64, u8>(&mut value.words)[..value.len]
                    .copy_from_slice(bytes);
            }
        }
    }

    /// Bytes the argument takes in the kernel's parameter list.
    #[must_use]
    pub fn size(&self) -> usize {
        match self {
            Self::U32(_) | Self::I32(_) | Self::F32(_) => 4,
            Self::U64(_) | Self::I64(_) | Self::F64(_) => 8,
            Self::Value(bytes) => bytes.len,
        }
    }

    /// Alignment of the argument's type.
    #[must_use]
    pub fn align(&self) -> usize {
        match self {
            Self::Value(bytes) => bytes.align,
            other => other.size(),
        }
    }
}

macro_rules! kernel_arg_from {
    ($($ty:ty => $variant:ident),*) => {$(
        impl From<$ty> for KernelArg {
            fn from(value: $ty) -> Self {
                Self::$variant(value)
            }
        }
    )*};
}
kernel_arg_from!(u32 => U32, i32 => I32, u64 => U64, i64 => I64, f32 => F32, f64 => F64);

/// The device address of an app's buffer (`CudaSlice`, `CudaView`): the kernel's `T*`, as a
/// number, for a [`KernelArg::U64`] or a `u64` field of a plugin producer's arguments.
///
/// Taking the address is safe: it is a number, and holds nothing alive. Supplying it to a
/// kernel is the `unsafe` act ([`GpuKernel::arg`](super::GpuKernel::arg),
/// `bevy::GpuProducerSpec::args`, or cudarc's own
/// launch), under a contract that the app keeps the buffer alive until every kernel given it
/// has finished, and orders its own writes to it before the launch (synchronize the stream
/// that wrote it): cudarc's event tracking does not follow the address onto perdix's stream.
/// There is no `From<&CudaSlice<T>>` for [`KernelArg`], so an address never goes into a launch
/// without an `unsafe` block saying why it stays valid:
///
/// ```compile_fail,E0277
/// use perdix_transport::cuda::cudarc::driver::CudaSlice;
/// use perdix_transport::cuda::KernelArg;
///
/// fn hidden(buffer: &CudaSlice<f32>) -> KernelArg {
///     KernelArg::from(buffer) // the buffer could be dropped before the launch
/// }
/// ```
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::cudarc::driver::CudaContext;
/// use perdix_transport::cuda::{device_address, KernelArg};
///
/// let ctx = CudaContext::new(0).map_err(perdix_transport::Error::Driver)?;
/// let xs = ctx.default_stream().alloc_zeros::<f32>(1024).map_err(perdix_transport::Error::Driver)?;
/// let arg = KernelArg::U64(device_address(&xs)); // a number; `xs` must outlive the launches
/// assert_eq!(arg.size(), 8);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[must_use]
pub fn device_address<T>(buffer: &impl DevicePtr<T>) -> u64 {
    let (address, _read) = buffer.device_ptr(buffer.stream());
    address
}
