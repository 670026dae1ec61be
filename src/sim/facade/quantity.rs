//! Quantities as kube-apiserver prints them. The server never
//! echoes what a user wrote: it stores a `resource.Quantity` and prints its
//! canonical form, which depends on the format the value was written in.
//! A client that only ever sees `"300m"` and plain bytes has not been shown
//! the API, so the façade serves every canonical form, chosen per object.

/// The format a quantity was written in, which its canonical form keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Ki`…`Ei`, as memory is usually written (`512Mi`).
    BinarySi,
    /// `k`, `M`, `G`… (`129M`).
    DecimalSi,
    /// `e3`, `e6`… (`129e6`).
    DecimalExponent,
    /// A binary value that is not a whole number of bytes (`1.2Gi`): the
    /// server falls back to millibytes (`1288490188800m`).
    Fractional,
}

impl Format {
    /// One format per object, stable across lists, so that one world shows
    /// all of them.
    pub fn for_object(name: &str) -> Format {
        match name.bytes().map(u32::from).sum::<u32>() % 4 {
            0 => Format::BinarySi,
            1 => Format::DecimalSi,
            2 => Format::DecimalExponent,
            _ => Format::Fractional,
        }
    }
}

/// CPU, canonical: whole cores bare (`"2"`), anything finer in millicores
/// (`"1500m"`: what `1.5` becomes).
pub fn cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Memory of `bytes` in the canonical form of `format`. The largest suffix
/// that divides exactly is used; a value no suffix divides is printed bare.
/// A binary value under 1024 is printed in decimal, as
/// `Quantity.CanonicalizeBytes` does (`1000` is `1k`, never `1000`).
/// `Fractional` prints 0.8 byte less than `bytes` in millibytes, the shape
/// of a value like `1.2Gi`: a client rounding requests up, as the
/// scheduler does, reads `bytes` back.
pub fn memory(bytes: u64, format: Format) -> String {
    match format {
        Format::BinarySi if bytes < 1024 => memory(bytes, Format::DecimalSi),
        Format::BinarySi => largest_suffix(bytes, 1024, &["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
        Format::DecimalSi => largest_suffix(bytes, 1000, &["k", "M", "G", "T", "P", "E"]),
        Format::DecimalExponent => {
            largest_suffix(bytes, 1000, &["e3", "e6", "e9", "e12", "e15", "e18"])
        }
        Format::Fractional if bytes == 0 => "0".into(),
        Format::Fractional => format!("{}m", u128::from(bytes) * 1000 - 800),
    }
}

fn largest_suffix(value: u64, base: u64, suffixes: &[&str]) -> String {
    let mut mantissa = value;
    let mut used = None;
    for suffix in suffixes {
        if mantissa == 0 || !mantissa.is_multiple_of(base) {
            break;
        }
        mantissa /= base;
        used = Some(*suffix);
    }
    match used {
        Some(suffix) => format!("{mantissa}{suffix}"),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube_convert::{bytes, cpu_millis};

    #[test]
    fn cpu_is_bare_for_whole_cores_and_in_millicores_otherwise() {
        assert_eq!(cpu(2000), "2");
        assert_eq!(cpu(1500), "1500m");
        assert_eq!(cpu(0), "0");
    }

    /// The forms the issue names, from the values that produce them.
    #[test]
    fn memory_takes_each_canonical_form() {
        assert_eq!(memory(123 << 20, Format::BinarySi), "123Mi");
        assert_eq!(memory(7 << 30, Format::BinarySi), "7Gi");
        assert_eq!(memory(1000, Format::BinarySi), "1k");
        assert_eq!(memory(999, Format::BinarySi), "999");
        assert_eq!(memory(2000, Format::BinarySi), "2000");
        assert_eq!(memory(129_000_000, Format::DecimalSi), "129M");
        assert_eq!(memory(129_000_000, Format::DecimalExponent), "129e6");
        assert_eq!(memory(512 << 20, Format::DecimalExponent), "536870912");
        // 1.2Gi is 1288490188.8 bytes, which the server prints as
        // 1288490188800m; the fractional form of a whole 1288490189 is
        // 0.8 byte less.
        assert_eq!(memory(1_288_490_189, Format::Fractional), "1288490188200m");
    }

    /// What the façade prints, the adapter reads back to the byte and the
    /// millicore, for every form.
    #[test]
    fn every_form_reads_back_as_the_same_value() {
        for value in [1, 999, 1000, 1024, 512 << 20, 129_000_000, 7 << 30, 3 << 40] {
            for format in [
                Format::BinarySi,
                Format::DecimalSi,
                Format::DecimalExponent,
                Format::Fractional,
            ] {
                let text = memory(value, format);
                assert_eq!(bytes(&text), Some(value), "{text} ({format:?})");
            }
        }
        for millis in [1, 300, 1000, 1900, 64_000] {
            assert_eq!(cpu_millis(&cpu(millis)), Some(millis));
        }
    }

    #[test]
    fn objects_are_spread_over_the_formats() {
        let formats: std::collections::BTreeSet<String> = (0..16)
            .map(|i| format!("{:?}", Format::for_object(&format!("web-{i}"))))
            .collect();
        assert_eq!(formats.len(), 4, "{formats:?}");
    }
}
