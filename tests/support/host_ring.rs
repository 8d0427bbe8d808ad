//! A host ring whose slot memory the test can reach, to write slots behind the ring's back as a
//! faulty GPU kernel would.

use core::ptr::NonNull;

use perdix_transport::{Buffer, Consumer, Host, Producer, RingMemory};

/// A `capacity`-slot ring in host memory, its halves, and the address of slot 0.
pub fn ring_with_memory(capacity: usize) -> (Producer, Consumer, NonNull<u8>) {
    let mut base = None;
    let buffer = Buffer::builder(capacity)
        .build_in(|bytes| {
            let memory = Host::alloc(bytes)?;
            base = Some(memory.as_ptr());
            Ok(memory)
        })
        .unwrap_or_else(|err| panic!("ring: {err}"));
    let Some(base) = base else {
        panic!("the allocator was not called")
    };
    let (producer, consumer) = buffer.into_split();
    (producer, consumer, base)
}
