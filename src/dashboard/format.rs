//! Text for the panel's figures: SI prefixes, grouped counts, durations.

use super::series::finite;

/// The text, or `-` when it is empty.
pub(super) fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `1.23 MB/s`-style text (k, M, G, T, P, E). A `unit` starting with a space keeps the prefix
/// apart from it (`1.23 M msg/s`).
pub(super) fn si(v: f64, unit: &str) -> String {
    let v = finite(v);
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut scaled = v;
    let mut idx = 0;
    while scaled.abs() >= 1000.0 && idx + 1 < PREFIXES.len() {
        scaled /= 1000.0;
        idx += 1;
    }
    let spaced = unit.starts_with(' ');
    let unit = unit.trim_start();
    let prefix = PREFIXES[idx];
    let digits = if idx > 0 {
        2
    } else if scaled.fract() == 0.0 || scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = match (prefix.is_empty(), spaced) {
        (true, _) => format!("{scaled:.digits$} {unit}"),
        (false, true) => format!("{scaled:.digits$} {prefix} {unit}"),
        (false, false) => format!("{scaled:.digits$} {prefix}{unit}"),
    };
    if unit.is_empty() {
        text.trim_end().to_owned()
    } else {
        text
    }
}

/// Mean payload bytes per message (`bytes` over `messages`) as `4.10 kB`-style text, or `-`
/// with no messages.
pub(super) fn message_size(bytes: f64, messages: f64) -> String {
    let (bytes, messages) = (finite(bytes), finite(messages));
    if messages > 0.0 {
        si(bytes / messages, "B")
    } else {
        "-".to_owned()
    }
}

/// A count with thin separators every three digits.
pub(super) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A duration in ns as `850 ns`, `1.21 µs`, `5.30 ms` or `2.00 s`.
pub(super) fn ns(v: f64) -> String {
    let v = finite(v).max(0.0);
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.2} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(si(0.0, "B/s"), "0 B/s");
        assert_eq!(si(1_234_000.0, " msg/s"), "1.23 M msg/s");
        assert_eq!(si(12.0, " msg/s"), "12 msg/s");
        assert_eq!(si(0.25, ""), "0.25");
        assert_eq!(si(12.5, " /s"), "12.5 /s");
        assert_eq!(si(2_500.0, ""), "2.50 k");
        assert_eq!(si(5_900_000.0, "B/s"), "5.90 MB/s");
        assert_eq!(si(f64::NAN, "B"), "0 B");
        assert_eq!(si(1e30, "B"), "1000000000000.00 EB");
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(ns(850.0), "850 ns");
        assert_eq!(ns(1_210.0), "1.21 µs");
        assert_eq!(ns(5_300_000.0), "5.30 ms");
        assert_eq!(ns(f64::INFINITY), "0 ns");
        assert_eq!(message_size(4_096_000.0, 1_000.0), "4.10 kB");
        assert_eq!(message_size(64.0, 1.0), "64 B");
        assert_eq!(message_size(0.0, 0.0), "-");
        assert_eq!(message_size(f64::NAN, f64::INFINITY), "-");
    }
}
