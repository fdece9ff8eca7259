//! Order statistics over a handful of samples.

/// The value at quantile `q` (0..=1) by nearest rank; NaN when empty.
pub fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The median (nearest rank: with an even count, the upper middle).
pub fn median(v: Vec<f64>) -> f64 {
    percentile(v, 0.5)
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks() {
        let v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(v.clone()), 3.0);
        assert_eq!(percentile(v.clone(), 0.99), 5.0);
        assert_eq!(percentile(v.clone(), 0.0), 1.0);
        assert_eq!((min(&v), max(&v)), (1.0, 5.0));
        assert!(median(vec![]).is_nan());
    }
}
