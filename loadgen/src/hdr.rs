//! HdrHistogram's interchange forms for the run's latency histograms (microseconds): the V2
//! compressed serialization in base64, which the JSON report carries so that shards can be
//! merged without loss and any HdrHistogram library can read them; and the percentile
//! distribution text (`.hgrm`) that HdrHistogram's plotter and wrk2 use, with values in
//! milliseconds.

use std::io::{self, Write};

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Percentile steps per halving of the distance to 100 %, as HdrHistogram's tools default to.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum HdrError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not an HdrHistogram V2 serialization: {0}")]
    Decode(String),
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

/// A histogram from [`encode`]'s form (or any HdrHistogram library's V2 base64).
pub fn decode(text: &str) -> Result<Histogram<u64>, HdrError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    Deserializer::new()
        .deserialize(&mut io::Cursor::new(bytes))
        .map_err(|e| HdrError::Decode(format!("{e:?}")))
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
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for v in 1..=10_000u64 {
            h.record(v * 10).expect("record");
        }
        h
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
