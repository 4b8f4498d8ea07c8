//! RFC 3339 <-> epoch milliseconds, for the API's timestamps.

use crate::domain::InvalidInput;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Format epoch milliseconds as RFC 3339 in UTC.
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

/// Parse an RFC 3339 timestamp (any offset) into epoch milliseconds.
///
/// # Errors
/// `code` with a message naming `field` when the text is not RFC 3339.
pub fn parse_ms(raw: &str, field: &str, code: &'static str) -> Result<i64, InvalidInput> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            InvalidInput::new(
                code,
                format!("{field} must be an RFC 3339 timestamp such as 2026-12-01T10:00:00Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let ms = parse_ms("2026-12-01T10:00:00+01:00", "opens_at", "x").unwrap();
        assert_eq!(format_ms(ms), "2026-12-01T09:00:00Z");
        assert!(parse_ms("tomorrow", "opens_at", "x").is_err());
    }
}
