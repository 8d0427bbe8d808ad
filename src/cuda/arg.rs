//! `KernelArg`: one argument of a [`GpuKernel`](super::GpuKernel) after the producer pointer,
//! by value: a scalar, a `#[repr(C)]` struct's bytes, or the address of a device buffer.

use cudarc::driver::{CudaSlice, CudaView, DevicePtr};

/// One kernel argument after the producer pointer, passed by value as the kernel declares it.
///
/// Scalars come `From` their Rust type (`u32` is `unsigned`, `u64` is `unsigned long long`,
/// `f64` is `double`...); a `#[repr(C)]` struct passed by value is [`KernelArg::value`]; an
/// app's device buffer (`&CudaSlice<T>`, `&CudaView<T>`) becomes its device address, the
/// kernel's `T*` (see the `From` impls for who keeps it alive). Before a launch the arguments
/// are checked against the kernel's parameters as its PTX declares them: the count, each size,
/// and a struct's alignment; a mismatch is [`Error::InvalidConfig`](crate::Error::InvalidConfig)
/// and nothing is launched.
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

/// The buffer's device address (the kernel's `T*`).
///
/// The address is all the kernel gets: the app keeps the buffer alive until every kernel given
/// it has finished, and orders its own writes to it before the launch (synchronize the stream
/// that wrote it), as [`GpuKernel::from_source`](super::GpuKernel::from_source)'s contract
/// (item 3) says. cudarc's event tracking does not follow the address onto perdix's stream.
impl<T> From<&CudaSlice<T>> for KernelArg {
    fn from(buffer: &CudaSlice<T>) -> Self {
        Self::U64(device_address(buffer))
    }
}

/// The view's device address (the kernel's `T*`), on the terms of the `&CudaSlice` impl.
impl<T> From<&CudaView<'_, T>> for KernelArg {
    fn from(view: &CudaView<'_, T>) -> Self {
        Self::U64(device_address(view))
    }
}

/// The device address of an app's buffer (`CudaSlice`, `CudaView`), for a `u64` field of a
/// plugin producer's arguments (the kernel's `T*`); the terms of the `&CudaSlice` impl of
/// `From` for [`KernelArg`] apply.
#[must_use]
pub fn device_address<T>(buffer: &impl DevicePtr<T>) -> u64 {
    let (address, _read) = buffer.device_ptr(buffer.stream());
    address
}
