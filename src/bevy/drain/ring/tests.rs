//! A ring whose producer failed (a GPU kernel fault, on the GPU) fails after it is drained.

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::message::Messages;

use crate::bevy::{DrainMode, PerdixEvent, PerdixPlugin, PerdixRings, RingState};
use crate::Error;

fn producer_fault_fails_the_ring_after_its_messages(drain: DrainMode) {
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().drain(drain).route(false));
    let (mut failed, mut other) = {
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        let pair = (ring.add_producer("failed"), ring.add_producer("other"));
        match pair {
            (Ok(a), Ok(b)) => (a, b),
            _ => panic!("rings"),
        }
    };
    for n in 0u32..3 {
        failed
            .try_produce(&n.to_le_bytes())
            .unwrap_or_else(|err| panic!("produce: {err}"));
    }
    let fault = Error::Spawn("the producer's fault".into());
    app.world_mut()
        .resource_mut::<PerdixRings>()
        .fail_rings(0..1, &fault);
    let mut taken = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "ring 0 did not fail within 10 s");
        other
            .try_produce(b"on")
            .unwrap_or_else(|err| panic!("other ring: {err}"));
        app.update();
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        ring.drain_with(100, |msg| {
            if msg.len() == 4 {
                taken.push(msg.payload().to_vec());
            }
        });
        if ring.ring_state(0) == Some(RingState::Failed(fault.clone())) {
            break;
        }
    }
    // Everything published before the fault came first.
    let want: Vec<Vec<u8>> = (0u32..3).map(|n| n.to_le_bytes().to_vec()).collect();
    assert_eq!(taken, want);
    app.update(); // the event is written by the next drain
    let events = app.world().resource::<Messages<PerdixEvent>>();
    let got: Vec<PerdixEvent> = events.get_cursor().read(events).cloned().collect();
    assert_eq!(
        got,
        [PerdixEvent::RingFailed {
            ring: 0,
            name: "failed".into(),
            device: None,
            error: fault,
        }]
    );
    let ring = app.world().resource::<PerdixRings>();
    assert_eq!(ring.ring_state(1), Some(RingState::Running));
    // The drained ring dropped its consumer (or its drain thread did): the ring is closed.
    assert!(failed.is_abandoned());
}

#[test]
fn producer_fault_fails_the_ring_after_its_messages_in_system_drain() {
    producer_fault_fails_the_ring_after_its_messages(DrainMode::System);
}

#[test]
fn producer_fault_fails_the_ring_after_its_messages_in_thread_drain() {
    producer_fault_fails_the_ring_after_its_messages(DrainMode::Thread);
}
