//! Messages of any size (issue 13): a 4 KiB `Pod` type, varying-length typed slices mixed with
//! small messages (in order and intact, in both drain modes), a 10 KiB raw message, malformed
//! slice lengths, the capacity bound of typed routes, and the message-size diagnostics.

use perdix_transport::bevy::{PerdixEvent, PerdixSlice};
use perdix_transport::layout::{max_message, SLOT_PAYLOAD};

use super::*;

const KIND_PAGE: u32 = 10;
const KIND_BINS: u32 = 11;

/// 4 KiB: 17 slots with its header.
#[derive(Message, Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Page {
    words: [u64; 512],
}

impl Page {
    fn new(n: u64) -> Self {
        let mut words = [0; 512];
        for (i, w) in words.iter_mut().enumerate() {
            *w = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
        }
        Self { words }
    }
}

/// A histogram bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Bin {
    lo: u32,
    count: u32,
}

/// Histogram `n` has `n % 97` bins (0 to 96: 0 to 768 bytes, one to four slots).
fn bins(n: u32) -> Vec<Bin> {
    (0..n % 97)
        .map(|i| Bin {
            lo: i * 10,
            count: n ^ i,
        })
        .collect()
}

#[derive(Resource, Default)]
struct SeenBins(Vec<PerdixSlice<Bin>>);

fn collect_bins(mut reader: MessageReader<PerdixSlice<Bin>>, mut seen: ResMut<SeenBins>) {
    seen.0.extend(reader.read().cloned());
}

#[derive(Resource, Default)]
struct SeenPages(Vec<Page>);

fn collect_pages(mut reader: MessageReader<Page>, mut seen: ResMut<SeenPages>) {
    seen.0.extend(reader.read().copied());
}

fn sizes_app(plugin: PerdixPlugin) -> App {
    let mut app = app(plugin);
    app.add_perdix_message::<Page>(KIND_PAGE)
        .add_perdix_slice::<Bin>(KIND_BINS)
        .init_resource::<SeenBins>()
        .init_resource::<SeenPages>()
        .add_systems(Update, (collect_bins, collect_pages));
    app
}

fn events(app: &App) -> Vec<PerdixEvent> {
    let events = app.world().resource::<Messages<PerdixEvent>>();
    events.get_cursor().read(events).cloned().collect()
}

#[test]
fn a_4_kib_pod_type_arrives_whole() {
    // 20 pages of 17 slots and 20 ticks: 360 slots.
    let mut app = sizes_app(PerdixPlugin::default().capacity(512));
    let mut p = producer(&mut app, "a");
    for n in 0..20 {
        let page = Page::new(n);
        assert_eq!(
            p.try_produce_kind(KIND_PAGE, bytemuck::bytes_of(&page)),
            Ok(())
        );
        send_tick(&mut p, 0, n as u32);
    }
    app.update();
    let pages = &app.world().resource::<SeenPages>().0;
    let want: Vec<Page> = (0..20).map(Page::new).collect();
    assert_eq!(pages, &want);
    assert_in_order(&app.world().resource::<Seen>().0, 1, 20);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (
            counters.total().messages,
            counters.total().malformed,
            counters.total().unrouted
        ),
        (40, 0, 0)
    );
    assert_eq!(counters.total().bytes, 20 * (4096 + 32));
    assert!(events(&app).is_empty());
}

/// Histograms of 0 to 96 bins mixed with ticks, over many laps of a small ring, drained by
/// `drain`: every one arrives once, in order, intact, with its header.
fn slices_in_order(drain: DrainMode) {
    const COUNT: u32 = 600;
    let mut app = sizes_app(PerdixPlugin::default().capacity(32).drain(drain));
    let mut p = producer(&mut app, "a");
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent < COUNT {
        // A few messages a frame: the 32-slot ring wraps (with pad records) every frame or so.
        for _ in 0..4 {
            if sent == COUNT {
                break;
            }
            let bins = bins(sent);
            match p.try_produce_kind(KIND_BINS, bytemuck::cast_slice(&bins)) {
                Ok(()) => {
                    let tick = Tick::new(0, sent);
                    while let Err(err) = p.try_produce_kind(KIND_TICK, bytemuck::bytes_of(&tick)) {
                        assert_eq!(err, Error::Full);
                        app.update();
                    }
                    sent += 1;
                }
                Err(Error::Full) => break,
                Err(err) => panic!("produce: {err}"),
            }
        }
        app.update();
        assert!(Instant::now() < deadline, "stuck at {sent}");
    }
    drop(p);
    while !app.world().resource::<PerdixRings>().is_finished() {
        app.update();
        assert!(Instant::now() < deadline, "not finished");
    }
    app.update();
    let seen = &app.world().resource::<SeenBins>().0;
    assert_eq!(seen.len(), COUNT as usize);
    let mut last_seq = None;
    for (n, got) in seen.iter().enumerate() {
        assert_eq!(got.values, bins(n as u32), "histogram {n}");
        assert_eq!(
            (got.header.kind, got.header.producer, got.header.ring),
            (KIND_BINS, 0, 0)
        );
        assert!(
            last_seq < Some(got.header.seq),
            "histogram {n}: seq {}",
            got.header.seq
        );
        last_seq = Some(got.header.seq);
    }
    assert_in_order(&app.world().resource::<Seen>().0, 1, COUNT);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().malformed),
        (2 * u64::from(COUNT), 0)
    );
}

#[test]
fn varying_length_slices_arrive_in_order_and_intact() {
    slices_in_order(DrainMode::System);
}

#[test]
fn varying_length_slices_arrive_in_order_through_drain_threads() {
    slices_in_order(DrainMode::Thread);
}

/// Raw messages of one slot, 10 KiB (41 slots) and none, drained by `drain`.
fn raw_10_kib_intact(drain: DrainMode) {
    let mut app = sizes_app(PerdixPlugin::default().capacity(128).drain(drain));
    let mut p = producer(&mut app, "a");
    let big: Vec<u8> = (0..10_240u32).map(|i| (i * 31 % 251) as u8).collect();
    let small = [7u8; SLOT_PAYLOAD];
    assert_eq!(p.try_produce_kind(99, &small), Ok(()));
    assert_eq!(p.try_produce_kind(99, &big), Ok(()));
    assert_eq!(p.try_produce_kind(99, b""), Ok(()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .world()
        .resource::<PerdixRings>()
        .counters()
        .total()
        .messages
        < 3
    {
        app.update();
        assert!(Instant::now() < deadline, "not delivered");
    }
    let raw = app.world().resource::<Messages<PerdixMessage>>();
    let got: Vec<PerdixMessage> = raw.get_cursor().read(raw).cloned().collect();
    let payloads: Vec<&[u8]> = got.iter().map(PerdixMessage::payload).collect();
    assert_eq!(payloads, [&small[..], &big[..], b""]);
    assert_eq!(got[1].len(), 10_240);
    // Positions count slots: the 224-byte message takes one, the 10 KiB one 41.
    let seqs: Vec<u64> = got.iter().map(PerdixMessage::seq).collect();
    assert_eq!(seqs, [0, 1, 42]);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().unrouted),
        (3, 3)
    );
}

#[test]
fn a_10_kib_raw_message_arrives_intact() {
    raw_10_kib_intact(DrainMode::System);
}

#[test]
fn a_10_kib_raw_message_arrives_intact_through_a_drain_thread() {
    raw_10_kib_intact(DrainMode::Thread);
}

#[test]
fn a_slice_of_partial_elements_is_malformed() {
    let mut app = sizes_app(PerdixPlugin::default().capacity(64));
    let mut p = producer(&mut app, "a");
    let whole = bins(20);
    let bytes: &[u8] = bytemuck::cast_slice(&whole);
    assert_eq!(
        p.try_produce_kind(KIND_BINS, &bytes[..bytes.len() - 3]),
        Ok(())
    );
    assert_eq!(p.try_produce_kind(KIND_BINS, &[1, 2, 3, 4, 5]), Ok(()));
    assert_eq!(p.try_produce_kind(KIND_BINS, bytes), Ok(()));
    assert_eq!(p.try_produce_kind(KIND_BINS, &[]), Ok(()));
    app.add_plugins(DiagnosticsPlugin);
    app.update();
    let seen = &app.world().resource::<SeenBins>().0;
    let got: Vec<&[Bin]> = seen.iter().map(|s| &s.values[..]).collect();
    assert_eq!(got, [&whole[..], &[]]);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (
            counters.total().messages,
            counters.total().malformed,
            counters.total().unrouted
        ),
        (4, 2, 0)
    );
    let store = app.world().resource::<DiagnosticsStore>();
    let malformed = store
        .get(&PerdixDiagnostics::MALFORMED)
        .and_then(|d| d.value());
    assert_eq!(malformed, Some(2.0));
}

#[test]
fn a_type_larger_than_the_rings_carry_is_an_error() {
    // 4 rings of 16 slots carry 2,016 bytes at most: a 4 KiB page can never arrive.
    let plugin = PerdixPlugin::default().capacity(16);
    assert_eq!(plugin.max_message(), max_message(16));
    assert_eq!(plugin.max_message(), 2_016);
    // Registered after the plugin (checked at once) and before it (checked by `build()`).
    let mut after = App::new();
    after
        .add_plugins(plugin.clone())
        .add_perdix_message::<Page>(KIND_PAGE);
    let mut before = App::new();
    before
        .add_perdix_slice::<Page>(KIND_PAGE)
        .add_plugins(plugin);
    for (app, name) in [(&mut after, "Page"), (&mut before, "PerdixSlice")] {
        app.add_perdix_slice::<Bin>(KIND_BINS); // fits: not reported
        app.update();
        let got = events(app);
        assert_eq!(got.len(), 1, "{got:?}");
        let PerdixEvent::RouteTooLarge {
            kind,
            type_name,
            error,
        } = &got[0]
        else {
            panic!("{got:?}");
        };
        assert_eq!(*kind, KIND_PAGE);
        assert!(type_name.contains(name), "{type_name}");
        assert_eq!(
            *error,
            Error::MessageTooLarge {
                len: 4096,
                max: 2_016
            }
        );
        assert_eq!(app.world().resource::<PerdixRings>().errors(), 1);
        // Reported once.
        app.update();
        app.update();
        assert_eq!(app.world().resource::<PerdixRings>().errors(), 1);
    }
}

#[test]
fn message_size_diagnostics() {
    let mut app = sizes_app(PerdixPlugin::default().capacity(256));
    app.add_plugins(DiagnosticsPlugin);
    let mut p = producer(&mut app, "a");
    app.update();
    std::thread::sleep(Duration::from_millis(120));
    app.update(); // the baseline sample
    std::thread::sleep(Duration::from_millis(120));
    // Three pages (4,096 bytes) and a 32-byte tick: 12,320 bytes over 4 messages.
    for n in 0..3 {
        let page = Page::new(n);
        assert_eq!(
            p.try_produce_kind(KIND_PAGE, bytemuck::bytes_of(&page)),
            Ok(())
        );
    }
    send_tick(&mut p, 0, 0);
    app.update();
    let store = app.world().resource::<DiagnosticsStore>();
    let value = |path: &bevy_diagnostic::DiagnosticPath| store.get(path).and_then(|d| d.value());
    let mean = value(&PerdixDiagnostics::MESSAGE_BYTES).unwrap_or_default();
    assert!((mean - 3_080.0).abs() < 1e-6, "mean {mean}");
    assert_eq!(value(&PerdixDiagnostics::MESSAGE_BYTES_MAX), Some(4_096.0));
    assert!(PerdixDiagnostics::overlay_paths().contains(&PerdixDiagnostics::MESSAGE_BYTES));
}

#[test]
fn a_slice_of_the_largest_message_arrives_over_many_laps() {
    // 16 slots carry 2,016 bytes at most: 252 u64s, 8 slots, each after a pad or not.
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(16))
        .add_perdix_slice::<u64>(KIND_BINS);
    let mut p = producer(&mut app, "a");
    let max = max_message(16) / 8;
    for lap in 0..40u64 {
        // A small message first shifts where the big one starts (a pad when it would wrap).
        let small: Vec<u64> = (0..lap % 5).collect();
        let big: Vec<u64> = (0..max as u64).map(|i| i ^ lap << 32).collect();
        for values in [&small, &big] {
            assert_eq!(
                p.try_produce_kind(KIND_BINS, bytemuck::cast_slice(values)),
                Ok(())
            );
            app.update();
            let got = app.world().resource::<Messages<PerdixSlice<u64>>>();
            let last = got.get_cursor().read(got).last().map(|s| s.values.clone());
            assert_eq!(last.as_ref(), Some(values), "lap {lap}");
        }
    }
    assert_eq!(
        p.try_produce_kind(KIND_BINS, &vec![0; max * 8 + 1]),
        Err(Error::MessageTooLarge {
            len: max * 8 + 1,
            max: max * 8
        })
    );
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().malformed),
        (80, 0)
    );
}
