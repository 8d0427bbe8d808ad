//! The GPU stress tests' one check of a run: every message verified, the device counters exact,
//! no consumer error (the run's figures printed first, for the log).

use perdix_transport::testing::gpu::GpuStressReport;
use perdix_transport::testing::stress::Throughput;

/// Panics unless `report` is a clean run.
pub fn assert_clean(report: &GpuStressReport) {
    println!(
        "{:?} {:?} sizes {:?}: {} msgs, {:.1} M/s, {:.2} GB/s, counters {:?}, attempts {}, verify {:?}",
        report.config.kernel,
        report.backend,
        report.config.sizes(),
        report.verify.messages,
        report.msgs_per_sec() / 1e6,
        report.bytes_per_sec() / 1e9,
        report.counters,
        report.attempts,
        report.verify
    );
    assert!(report.verify.is_clean(), "{:?}", report.verify);
    assert!(report.counts_exact(), "counts: {report:?}");
    assert!(
        report.consumer_error.is_none(),
        "{:?}",
        report.consumer_error
    );
}
