//! Numbers a model stores, made to survive the JSON they are stored as. A model version keeps its
//! parameters as JSON (`model_versions.params`), and a model read back must score exactly as the
//! fitted one did. `serde_json` writes every f64 in its shortest exact form, but without its
//! `float_roundtrip` feature (off in this workspace: turning it on rebuilds every crate that
//! depends on serde_json) it parses a number exactly only when the digits fit an f64 mantissa and
//! the exponent is small — about one f64 in eight comes back one unit in the last place off. So the
//! fitters snap what they store to the nearest value that does come back (a relative 1e-12 away at
//! most; 1e-14 for values above 1e-7) before they use it.

/// `v`, or the value nearest it with at most 16 significant digits that `serde_json` reads back
/// exactly; 0 for a value nothing near reads back (none seen in practice).
pub(crate) fn snap(v: f64) -> f64 {
    if survives_json(v) {
        return v;
    }
    (1..=16).rev().map(|digits| short(v, digits)).find(|&t| survives_json(t)).unwrap_or(0.0)
}

/// `v` rounded to `digits` significant decimal digits.
pub(crate) fn short(v: f64, digits: usize) -> f64 {
    format!("{v:.*e}", digits.max(1) - 1).parse().unwrap_or(v)
}

/// Whether `serde_json` reads `v` back bit for bit from the text it writes (never for NaN or ±∞,
/// which it writes as `null`).
pub(crate) fn survives_json(v: f64) -> bool {
    serde_json::to_string(&v).ok().and_then(|s| serde_json::from_str::<f64>(&s).ok()) == Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapped_values_come_back_from_json_and_stay_close() {
        let mut s = 5u64;
        let mut moved = 0;
        for _ in 0..20_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = (((s >> 11) as f64) / (1u64 << 53) as f64 - 0.5) * 10f64.powi((s % 13) as i32 - 6);
            let t = snap(v);
            assert!(survives_json(t), "{v} → {t}");
            assert!((t - v).abs() <= v.abs() * if v.abs() > 1e-7 { 1e-14 } else { 1e-12 }, "{v} → {t}");
            moved += usize::from(t != v);
        }
        // Without snapping, a good share of these would not survive.
        assert!(moved > 1000, "{moved}");
        assert_eq!(snap(0.1), 0.1);
        assert!(!survives_json(f64::NAN));
    }
}
