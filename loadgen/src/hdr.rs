//! HdrHistogram's interchange forms for the run's latency histograms (microseconds): the V2
//! compressed serialization in base64, which the JSON report carries so that shards can be
//! merged without loss and any HdrHistogram library can read them; and the percentile
//! distribution text (`.hgrm`) that HdrHistogram's plotter and wrk2 use, with values in
//! milliseconds.

use std::io::{self, Read, Write};

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Percentile steps per halving of the distance to 100 %, as HdrHistogram's tools default to.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The recorder's histograms: 1 µs to 1 h, 3 significant digits. A histogram read back must
/// have these bounds, so histograms of different runs add without loss.
pub const LOWEST: u64 = 1;
pub const HIGHEST: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;

/// V2 cookies (with the 8-byte word size bits), as HdrHistogram's serialization defines them.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// V2 header: cookie, payload length, normalizing offset, digits, lowest, highest, ratio.
const V2_HEADER: usize = 40;
/// Far above what a histogram of these bounds serializes to (about 200 KB at worst), so a
/// hostile length cannot make the reader allocate gigabytes.
const MAX_ENCODED: usize = 2 << 20;
const MAX_INFLATED: u64 = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HdrError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("larger than any histogram of the load generator's ({0} bytes)")]
    TooLarge(usize),
    #[error("not an HdrHistogram V2 serialization: {0}")]
    Decode(String),
    #[error(
        "bounds {0}..{1} µs with {2} digits, not the load generator's 1..3600000000 µs with 3"
    )]
    Bounds(u64, u64, u32),
    #[error("serializing a histogram failed: {0}")]
    Encode(String),
}

/// `h` in HdrHistogram's V2 compressed form, base64 (standard alphabet, padded).
pub fn encode(h: &Histogram<u64>) -> Result<String, HdrError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| HdrError::Encode(format!("{e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A histogram from [`encode`]'s form (or any HdrHistogram library's V2 compressed base64)
/// with the recorder's bounds. Sizes are checked before anything is allocated for them.
pub fn decode(text: &str) -> Result<Histogram<u64>, HdrError> {
    let text = text.trim();
    if text.len() > MAX_ENCODED {
        return Err(HdrError::TooLarge(text.len()));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    let be32 = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let be64 = |b: &[u8], at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
    };
    let bad = |why: &str| HdrError::Decode(why.into());
    if be32(&bytes, 0) != Some(V2_COMPRESSED_COOKIE) {
        return Err(bad("no V2 compressed cookie"));
    }
    let compressed = be32(&bytes, 4).ok_or_else(|| bad("truncated"))? as usize;
    let zlib = bytes
        .get(8..8 + compressed)
        .ok_or_else(|| bad("shorter than its stated length"))?;
    let mut inner = Vec::new();
    flate2::read::ZlibDecoder::new(zlib)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut inner)
        .map_err(|e| HdrError::Decode(e.to_string()))?;
    if inner.len() as u64 > MAX_INFLATED {
        return Err(HdrError::TooLarge(inner.len()));
    }
    if be32(&inner, 0) != Some(V2_COOKIE) {
        return Err(bad("no V2 cookie inside"));
    }
    let payload = be32(&inner, 4).ok_or_else(|| bad("truncated"))? as usize;
    if V2_HEADER + payload > inner.len() {
        return Err(bad("payload shorter than its stated length"));
    }
    let digits = be32(&inner, 12).ok_or_else(|| bad("truncated"))?;
    let low = be64(&inner, 16).ok_or_else(|| bad("truncated"))?;
    let high = be64(&inner, 24).ok_or_else(|| bad("truncated"))?;
    if (low, high, digits) != (LOWEST, HIGHEST, u32::from(SIGFIG)) {
        return Err(HdrError::Bounds(low, high, digits));
    }
    Deserializer::new()
        .deserialize(&mut io::Cursor::new(&inner[..V2_HEADER + payload]))
        .map_err(|e| HdrError::Decode(format!("{e:?}")))
}

/// The rows of [`write_percentiles`] below the 100th percentile, as (quantile, milliseconds):
/// the points HdrHistogram's plotter draws.
pub fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            (
                v.quantile_iterated_to(),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .filter(|(q, _)| *q < 1.0)
        .collect()
}

/// The percentile distribution of `h` (recorded in microseconds) in HdrHistogram's text
/// format, values in milliseconds: the layout of Java's `outputPercentileDistribution`.
pub fn write_percentiles(h: &Histogram<u64>, w: &mut impl Write) -> io::Result<()> {
    const SCALE: f64 = 1000.0;
    let digits = usize::from(h.sigfig());
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / SCALE;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            writeln!(
                w,
                "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
        }
    }
    writeln!(
        w,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        w,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    writeln!(
        w,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(LOWEST, HIGHEST, SIGFIG).expect("bounds");
        for v in 1..=10_000u64 {
            h.record(v * 10).expect("record");
        }
        h
    }

    /// `inner` deflated and wrapped as V2 compressed: cookie, length, zlib stream.
    fn compressed(inner: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, inner).expect("deflate");
        let zlib = z.finish().expect("deflate");
        let mut outer = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        outer.extend_from_slice(&(zlib.len() as u32).to_be_bytes());
        outer.extend_from_slice(&zlib);
        outer
    }

    #[test]
    fn encoding_round_trips() {
        let h = sample();
        let back = decode(&encode(&h).expect("encode")).expect("decode");
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert_eq!(back.max(), h.max());
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }

    #[test]
    fn hostile_serializations_are_refused_before_allocating() {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // Other bounds: would not add to the recorder's histograms.
        let other = Histogram::<u64>::new_with_bounds(1, 1000, 2).expect("bounds");
        let e = decode(&encode(&other).expect("encode")).expect_err("other bounds");
        assert!(matches!(e, HdrError::Bounds(1, 1000, 2)), "{e}");
        // An inner payload length of 4 GB with no payload.
        let mut inner = Vec::new();
        inner.extend_from_slice(&V2_COOKIE.to_be_bytes());
        inner.extend_from_slice(&u32::MAX.to_be_bytes());
        inner.extend_from_slice(&[0; 32]);
        let outer = compressed(&inner);
        assert!(matches!(decode(&b64(&outer)), Err(HdrError::Decode(_))));
        // A stated compressed length past the end.
        let mut short = outer.clone();
        short[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&b64(&short)).is_err());
        // Too long a text.
        assert!(matches!(
            decode(&"A".repeat(MAX_ENCODED + 4)),
            Err(HdrError::TooLarge(_))
        ));
        // A zlib bomb: 100 MB of zeros inflates past the limit and stops there.
        let mut bomb_inner = V2_COOKIE.to_be_bytes().to_vec();
        bomb_inner.resize(100 << 20, 0);
        let bomb = compressed(&bomb_inner);
        assert!(matches!(decode(&b64(&bomb)), Err(HdrError::TooLarge(_))));
    }

    #[test]
    fn percentiles_in_milliseconds_end_at_the_max() {
        let mut out = Vec::new();
        write_percentiles(&sample(), &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("Value"))
            .collect();
        let last: Vec<&str> = rows.last().expect("rows").split_whitespace().collect();
        assert_eq!(last.len(), 3, "{text}");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        let max: f64 = last[0].parse().expect("number");
        assert!((max - 100.0).abs() < 0.1, "{max}");
        assert!(text.contains("Total count    =        10000"), "{text}");
    }
}
