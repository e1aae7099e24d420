//! The byte forms that hashes are computed over, and SHA-256.
//!
//! - [`jcs`]: RFC 8785 JSON Canonicalization Scheme (via `serde_json_canonicalizer`). Ledger
//!   entries of hash scheme 2 ([`crate::store::HashScheme::Jcs`]) are hashed over it, so anyone
//!   can re-verify a ledger with another language's JCS implementation (Python `rfc8785`,
//!   Java/Go/JS `jcs` libraries) and SHA-256.
//! - [`canonical_json`]: funnelgate's original form (object keys sorted by Rust string order at
//!   every level, no whitespace, strings and numbers exactly as `serde_json` writes them). Kept
//!   because ledgers written before JCS (hash scheme 1) are verified over it and the
//!   configuration hash is defined over it. New ledger entries never use it.

use sha2::{Digest, Sha256};

/// A value that has no RFC 8785 form.
#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalise JSON per RFC 8785: {0}")]
pub struct CanonicalError(String);

/// RFC 8785 canonical form of `value`: UTF-8, object members sorted by their names' UTF-16 code
/// units, no whitespace, numbers in ECMAScript shortest form, minimal string escaping.
pub fn jcs(value: &serde_json::Value) -> Result<String, CanonicalError> {
    serde_json_canonicalizer::to_string(value).map_err(|e| CanonicalError(e.to_string()))
}

/// funnelgate's original canonical form (hash scheme 1, configuration hash): keys sorted by
/// Rust string order at every level, no insignificant whitespace, numbers and strings exactly
/// as serde_json writes them.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k) {
                    write_value(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "c": "s"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"s","z":[3,{"x":2,"y":1}]},"b":1}"#
        );
        assert_eq!(
            jcs(&v).unwrap(),
            r#"{"a":{"c":"s","z":[3,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn canonical_form_round_trips() {
        let v =
            serde_json::json!({"f": 0.1, "n": -3, "s": "quote \" and \n", "u": null, "t": true});
        let text = canonical_json(&v);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&back), text);
        let text = jcs(&v).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(jcs(&back).unwrap(), text);
    }

    /// The example of RFC 8785 section 3.2.2 (values) and 3.2.3 (sorting), byte for byte.
    #[test]
    fn rfc8785_vectors() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: serde_json::Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            jcs(&v).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        // Sorting by UTF-16 code units: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
        let sorting = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let v: serde_json::Value = serde_json::from_str(sorting).unwrap();
        let names: Vec<String> = {
            let text = jcs(&v).unwrap();
            let mut names = Vec::new();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            // Recover the member order from the text itself (serde_json's map re-sorts).
            for key in back.as_object().unwrap().keys() {
                let needle = serde_json::Value::String(key.clone()).to_string();
                names.push((text.find(&needle).unwrap(), key.clone()));
            }
            names.sort();
            names.into_iter().map(|(_, k)| k).collect()
        };
        assert_eq!(
            names,
            [
                "\r",
                "1",
                "\u{80}",
                "\u{f6}",
                "\u{20ac}",
                "\u{1f600}",
                "\u{fb33}"
            ]
        );
    }
}
