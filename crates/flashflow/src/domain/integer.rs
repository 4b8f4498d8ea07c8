//! Integers in a JSON body as JSON Schema counts them: `2.0` is the integer 2 (JSON has one
//! number type; the API's OpenAPI document says `"type": "integer"`, which admits it), while
//! `2.5`, `"2"` and `true` are not integers.
//!
//! serde reads `2.0` as a float and an `i64` field refuses it; these read it as what it is.
//! Written here because no maintained crate does only this: serde_with's `PickFirst` would take
//! `2.5` too, after rounding.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct Integer;

impl Visitor<'_> for Integer {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // ±2^63 bound the floats that convert exactly; a fraction is not an integer.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

/// For `#[serde(deserialize_with = "integer::required")]` on an `i64` field.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Integer)
}

/// For `#[serde(default, deserialize_with = "integer::optional")]` on an `Option<i64>` field:
/// absent or `null` is `None`.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
            required(d).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::required")]
        n: i64,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<i64>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_of_zero_is_that_integer() {
        assert_eq!(
            parse(r#"{"n": 2.0, "m": 524287.0}"#).unwrap(),
            Body {
                n: 2,
                m: Some(524287)
            }
        );
        assert_eq!(parse(r#"{"n": -3e0}"#).unwrap(), Body { n: -3, m: None });
    }

    #[test]
    fn a_fraction_a_string_or_a_boolean_is_not_an_integer() {
        for bad in [
            r#"{"n": 2.5}"#,
            r#"{"n": "2"}"#,
            r#"{"n": true}"#,
            r#"{"n": 1, "m": 0.1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_integer_beyond_64_bits_is_refused_not_wrapped() {
        for bad in [
            r#"{"n": 1e19}"#,
            r#"{"n": 18446744073709551615}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_optional_integer_may_be_absent_or_null() {
        assert_eq!(
            parse(r#"{"n": 1, "m": null}"#).unwrap(),
            Body { n: 1, m: None }
        );
    }
}
