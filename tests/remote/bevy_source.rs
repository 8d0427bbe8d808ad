//! The plugin source: a publisher process's messages arrive in `Messages<Envelope<T>>` of an
//! app on this side, every one verified, in order, none lost (Block), with the origin node.

use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::message::Messages;
use perdix_transport::bevy::{Envelope, PerdixAppExt, PerdixPlugin, PerdixRings};
use perdix_transport::remote::{RemoteAppExt, RemoteConfig, RemoteDiagnostics, RemoteSource};
use perdix_transport::Policy;

use super::{finish_child, free_endpoint, spawn_publisher, verify, DEADLINE, MESSAGE};

/// Adds a remote source named `sink` to `app` (its config shaped by `shape`), listening on a
/// free loopback endpoint (five tries); returns the endpoint.
fn listen(app: &mut App, shape: impl Fn(RemoteConfig) -> RemoteConfig) -> String {
    for _ in 0..5 {
        let endpoint = free_endpoint();
        let config = shape(RemoteConfig::new("sink").unwrap().listen(&endpoint));
        if app.add_perdix_remote(&config).is_ok() {
            return endpoint;
        }
    }
    panic!("no free loopback port");
}

#[test]
fn plugin_source_delivers_remote_messages_as_envelopes_with_their_origin() {
    let messages = 50_000;
    let deadline = Instant::now() + DEADLINE;
    let mut app = App::new();
    app.add_plugins((DiagnosticsPlugin, PerdixPlugin::default().capacity(1024)))
        .add_perdix_envelope::<[u8; MESSAGE]>(1);
    let endpoint = listen(&mut app, |config| config.queue(4));
    let child = spawn_publisher(&endpoint, messages, Policy::Block, false);
    let mut cursor = app
        .world()
        .resource::<Messages<Envelope<[u8; MESSAGE]>>>()
        .get_cursor();
    let mut next = 0u64;
    let mut ring = None;
    while next < messages {
        assert!(
            Instant::now() < deadline,
            "app past its deadline at message {next}"
        );
        app.update();
        let got = app.world().resource::<Messages<Envelope<[u8; MESSAGE]>>>();
        for envelope in cursor.read(got) {
            let i = verify(&envelope.value).unwrap();
            assert_eq!(i, next, "in order, none lost");
            assert_eq!(
                envelope.header.producer,
                super::PUBLISHER_ID,
                "the publisher's id"
            );
            next += 1;
            ring = Some(envelope.header.ring);
        }
        if next < messages {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (published, _) = finish_child(child, deadline);
    assert_eq!(published, messages);
    let ring = ring.unwrap();
    let source = app.world().resource::<RemoteSource>();
    let origin = source.origin(ring).unwrap();
    assert_eq!(
        (origin.node.as_str(), origin.ring.as_str()),
        ("pub", "ring0")
    );
    assert_eq!(
        app.world().resource::<PerdixRings>().ring_name(ring),
        Some("pub/ring0")
    );
    let total = source.counters().total();
    assert_eq!(
        (total.messages, total.lost_messages, source.dropped()),
        (messages, 0, 0)
    );
    // Counters are a snapshot: reading twice takes nothing.
    assert_eq!(source.counters(), source.counters());
    std::thread::sleep(Duration::from_millis(120));
    app.update();
    let store = app.world().resource::<DiagnosticsStore>();
    let lost = store
        .get(&RemoteDiagnostics::LOST_MESSAGES)
        .and_then(|d| d.value());
    assert_eq!(lost, Some(0.0));
}

/// Under `DropNewest` a full local ring drops remote messages, and every one is counted:
/// delivered + dropped = received, exactly.
#[test]
fn plugin_source_counts_every_message_its_full_ring_drops() {
    let messages = 20_000;
    let deadline = Instant::now() + DEADLINE;
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(64))
        .add_perdix_envelope::<[u8; MESSAGE]>(1);
    let endpoint = listen(&mut app, |config| config.policy(Policy::DropNewest));
    let child = spawn_publisher(&endpoint, messages, Policy::Block, false);
    let mut cursor = app
        .world()
        .resource::<Messages<Envelope<[u8; MESSAGE]>>>()
        .get_cursor();
    let mut delivered = 0u64;
    let mut last = None;
    // One frame; the messages it delivered, each verified and in order.
    let mut read = |app: &mut App| -> u64 {
        app.update();
        let got = app.world().resource::<Messages<Envelope<[u8; MESSAGE]>>>();
        let mut n = 0;
        for envelope in cursor.read(got) {
            let i = verify(&envelope.value).unwrap();
            assert!(last.is_none_or(|l| i > l), "in order");
            last = Some(i);
            n += 1;
        }
        n
    };
    // Frames until the stream has its ring, then none until the publisher is done: the
    // 64-slot ring fills and the rest is dropped.
    while app.world().resource::<PerdixRings>().rings() == 0 {
        assert!(Instant::now() < deadline, "no remote ring attached");
        delivered += read(&mut app);
        std::thread::sleep(Duration::from_millis(1));
    }
    let (published, _) = finish_child(child, deadline);
    assert_eq!(published, messages);
    loop {
        assert!(
            Instant::now() < deadline,
            "the source never accounted for every message"
        );
        let source = app.world().resource::<RemoteSource>();
        let (received, dropped) = (source.counters().total().messages, source.dropped());
        let all_in = source.counters().all_ended(1) && received == messages;
        if all_in && delivered + dropped == received {
            assert!(dropped > 0, "a 64-slot ring left unread drops");
            break;
        }
        delivered += read(&mut app);
        std::thread::sleep(Duration::from_millis(2));
    }
}
