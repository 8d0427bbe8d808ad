//! What the plugin holds outside its rings is bounded in bytes (`max_held_bytes`), in both
//! drain modes: at the limit the drain stops taking, the ring fills, a `Block` producer waits
//! and a `DropNewest` producer drops (counted by the ring); every message taken is delivered
//! once, in order, and the plugin discards none.

use super::*;

/// Kind of the large raw messages here.
const KIND_BIG: u32 = 7;

/// Bytes one held message is counted as, besides its payload.
const OVERHEAD: usize = core::mem::size_of::<PerdixMessage>();

/// The numbers (first 8 payload bytes) of the raw messages seen by an ECS reader, checking
/// each payload whole.
#[derive(Resource, Default)]
struct SeenBig(Vec<u64>);

fn collect_big(mut reader: MessageReader<PerdixMessage>, mut seen: ResMut<SeenBig>) {
    for msg in reader.read() {
        let n = number(msg.payload());
        assert_eq!(msg.payload(), numbered(n, msg.len()), "message {n} intact");
        seen.0.push(n);
    }
}

/// Message `n` of `len` bytes: `n` in its first 8 bytes, then `n as u8`.
fn numbered(n: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![n as u8; len];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}

fn number(payload: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&payload[..8]);
    u64::from_le_bytes(word)
}

fn big_app(plugin: PerdixPlugin) -> (App, Producer) {
    let mut app = app(plugin);
    app.add_perdix_raw(KIND_BIG)
        .init_resource::<SeenBig>()
        .add_systems(Update, collect_big);
    let producer = producer(&mut app, "big");
    (app, producer)
}

fn held(app: &App) -> usize {
    app.world().resource::<PerdixRings>().held_bytes() as usize
}

/// Updates until the drain has taken `count` messages, checking the bound every frame.
fn resume(app: &mut App, count: u64, limit: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .world()
        .resource::<PerdixRings>()
        .counters()
        .total()
        .messages
        < count
    {
        assert!(Instant::now() < deadline, "drain did not take {count}");
        assert!(held(app) <= limit, "{} held, limit {limit}", held(app));
        app.update();
    }
    app.update();
    assert_eq!(held(app), 0, "everything taken was let go");
}

#[test]
fn a_stalled_frame_makes_the_thread_drain_stop_at_max_held_bytes_and_block_the_producer() {
    const MESSAGES: u64 = 64;
    // A 1024-slot ring (256 KiB) of its largest messages (128 KiB: two fill it); the default
    // limit is 4 rings' worth, 7 such messages as counted.
    let plugin = PerdixPlugin::default()
        .capacity(1024)
        .policy(Policy::Block)
        .drain(DrainMode::Thread);
    let limit = plugin.held_limit();
    assert_eq!(limit, 1 << 20);
    let (mut app, mut p) = big_app(plugin);
    let len = app.world().resource::<PerdixRings>().max_message();
    let (fit, in_ring) = (limit / (len + OVERHEAD), 2);
    assert_eq!(fit, 7);
    // No frame runs. Send until the ring is full while the plugin holds all it may.
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "{sent} sent; the drain thread never got to its limit"
        );
        // Before the bound, the drain thread took every message: 64 (8 MiB) with no frame.
        assert!(
            sent < MESSAGES,
            "{sent} sent with no frame: the plugin kept taking"
        );
        match p.try_produce_kind(KIND_BIG, &numbered(sent, len)) {
            Ok(()) => sent += 1,
            Err(Error::Full) if held(&app) + len + OVERHEAD > limit => break,
            Err(Error::Full) => std::thread::sleep(Duration::from_millis(1)),
            Err(err) => panic!("produce: {err}"),
        }
    }
    assert_eq!(sent, (fit + in_ring) as u64);
    assert_eq!(held(&app), fit * (len + OVERHEAD));
    assert_eq!(
        app.world().resource::<PerdixRings>().handed_over(),
        fit as u64
    );
    // The frame is still stalled: the ring stays full (backpressure), nothing more is taken.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        p.try_produce_kind(KIND_BIG, &numbered(sent, len)),
        Err(Error::Full)
    );
    assert_eq!(held(&app), fit * (len + OVERHEAD));
    // Frames resume while a Block producer sends the rest: each message arrives once, in order.
    let sender = std::thread::spawn(move || {
        for n in sent..MESSAGES {
            if let Err(err) = p.produce_kind(KIND_BIG, &numbered(n, len)) {
                panic!("produce: {err}");
            }
        }
    });
    resume(&mut app, MESSAGES, limit);
    assert!(sender.join().is_ok());
    let seen = &app.world().resource::<SeenBig>().0;
    assert_eq!(*seen, (0..MESSAGES).collect::<Vec<_>>());
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().unrouted),
        (MESSAGES, 0)
    );
    assert_eq!(
        app.world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .drops,
        0
    );
}

#[test]
fn a_stalled_frame_leaves_drop_newest_drops_to_the_ring_and_counts_them() {
    let plugin = PerdixPlugin::default()
        .capacity(1024)
        .policy(Policy::DropNewest)
        .drain(DrainMode::Thread);
    let limit = plugin.held_limit();
    let (mut app, mut p) = big_app(plugin);
    let len = app.world().resource::<PerdixRings>().max_message();
    // No frame runs. Send until the ring is full while the plugin holds all it may (a drop
    // before that only means the drain thread was late: give it a moment).
    let (mut accepted, mut dropped) = (Vec::new(), 0u64);
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the drain thread never got to its limit"
        );
        let result = p.produce_kind(KIND_BIG, &numbered(n, len));
        n += 1;
        // Before the bound, the drain thread held every message it could take (8 MiB).
        assert!(held(&app) <= limit, "{} held, limit {limit}", held(&app));
        match result {
            Ok(()) => accepted.push(n - 1),
            Err(Error::Full) if held(&app) + len + OVERHEAD > limit => {
                dropped += 1;
                break;
            }
            Err(Error::Full) => {
                dropped += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(err) => panic!("produce: {err}"),
        }
    }
    // Still no frame: the ring stays full, and the ring drops (the plugin takes nothing more).
    for n in n..n + 16 {
        assert_eq!(
            p.produce_kind(KIND_BIG, &numbered(n, len)),
            Err(Error::Full)
        );
        dropped += 1;
    }
    assert_eq!(
        accepted.len(),
        limit / (len + OVERHEAD) + 2,
        "the plugin's 7, the ring's 2"
    );
    assert_eq!(accepted.len() as u64 + dropped, n + 16);
    // The frame resumes: everything accepted arrives, in order; the plugin discarded nothing
    // and every drop is the ring's, counted.
    resume(&mut app, accepted.len() as u64, limit);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(rings.counters().total().drops, dropped);
    assert_eq!(rings.counters().total().messages, accepted.len() as u64);
    assert_eq!(app.world().resource::<SeenBig>().0, accepted);
}

#[test]
fn a_system_drain_takes_at_most_max_held_bytes_of_a_ring_a_frame_and_defers_the_rest() {
    // 15 messages of 16 KiB (65 slots each) fill most of a 1024-slot ring; a frame may take
    // 160 KiB of it (9 of them, as counted), well under its budget of 1,000 messages.
    const LEN: usize = 16 << 10;
    let limit = 160 << 10;
    let plugin = PerdixPlugin::default()
        .capacity(1024)
        .budget(1000)
        .max_held_bytes(limit);
    let (mut app, mut p) = big_app(plugin);
    for n in 0..15 {
        assert_eq!(p.try_produce_kind(KIND_BIG, &numbered(n, LEN)), Ok(()));
    }
    let per_frame = (limit / (LEN + OVERHEAD)) as u64;
    assert_eq!(per_frame, 9);
    app.update();
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        counters.total().messages,
        per_frame,
        "one frame, within the byte limit"
    );
    // The rest waits in the ring, deferred (counted in ring positions: 65 slots each).
    assert_eq!(
        (counters.app.deferred, counters.app.deferred_frames),
        ((15 - per_frame) * 65, 1)
    );
    assert_eq!(
        app.world().resource::<SeenBig>().0,
        (0..per_frame).collect::<Vec<_>>()
    );
    app.update();
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (
            counters.total().messages,
            counters.app.deferred,
            counters.app.max_frame
        ),
        (15, 0, per_frame)
    );
    assert_eq!(
        app.world().resource::<SeenBig>().0,
        (0..15).collect::<Vec<_>>()
    );
}

#[test]
fn max_held_bytes_must_hold_one_message_of_the_largest_size() {
    let plugin = PerdixPlugin::default().capacity(1024);
    let need = plugin.max_message() + OVERHEAD;
    assert_eq!(plugin.clone().max_held_bytes(need).validate(), Ok(()));
    let err = plugin.max_held_bytes(need - 1).validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid configuration: max_held_bytes of {} cannot hold one message of the rings' \
             largest size (131040 bytes, counted as {need}): it would never leave its ring",
            need - 1
        )
    );
    // The default holds 4 rings' worth, whatever the capacity.
    for capacity in [2, 1024, 1 << 20] {
        let plugin = PerdixPlugin::default().capacity(capacity);
        assert_eq!(plugin.held_limit(), capacity * 256 * 4);
        assert_eq!(plugin.validate(), Ok(()));
    }
}

#[test]
fn the_held_bytes_diagnostic_reports_what_the_drain_threads_hold() {
    const MESSAGES: u64 = 24;
    // One message a frame: the frame lets one go, the thread keeps the rest.
    let plugin = PerdixPlugin::default()
        .capacity(1024)
        .budget(1)
        .drain(DrainMode::Thread);
    let limit = plugin.held_limit();
    let (mut app, mut p) = big_app(plugin);
    app.add_plugins(DiagnosticsPlugin);
    let len = app.world().resource::<PerdixRings>().max_message();
    let sender = std::thread::spawn(move || {
        for n in 0..MESSAGES {
            if let Err(err) = p.produce_kind(KIND_BIG, &numbered(n, len)) {
                panic!("produce: {err}");
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while held(&app) + len + OVERHEAD <= limit {
        assert!(
            Instant::now() < deadline,
            "the drain thread never got to its limit"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    app.update();
    let store = app.world().resource::<DiagnosticsStore>();
    let value = store
        .get(&PerdixDiagnostics::HELD_BYTES)
        .and_then(|diagnostic| diagnostic.value())
        .unwrap_or_else(|| panic!("no perdix/held_bytes measured"));
    // Seven held, one let go by the frame; the thread may have taken another since.
    let value = value as usize;
    assert!(value >= 6 * (len + OVERHEAD) && value <= limit, "{value}");
    resume(&mut app, MESSAGES, limit);
    assert!(sender.join().is_ok());
    assert_eq!(
        app.world().resource::<SeenBig>().0,
        (0..MESSAGES).collect::<Vec<_>>()
    );
}
