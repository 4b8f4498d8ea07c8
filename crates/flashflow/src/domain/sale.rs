//! A sale as the operator defines it, and the validation of an operator's request for one.

use super::{InvalidInput, SaleId, MAX_QUANTITY};
use crate::domain::timefmt::parse_ms;
use serde::{Deserialize, Serialize};

/// Largest stock one sale may have; far above any flash sale, well inside Postgres' `integer`.
pub const MAX_STOCK: u32 = 10_000_000;
/// Longest sale name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Most buy attempts per buyer per minute a sale may allow (when it limits them at all).
pub const MAX_ATTEMPTS_PER_MINUTE: u32 = 10_000;

/// A valid sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleDefinition {
    pub id: SaleId,
    pub name: String,
    pub stock: u32,
    pub per_user_limit: u32,
    /// Milliseconds since the Unix epoch; buys before it are refused.
    pub opens_at_ms: Option<i64>,
    /// Milliseconds since the Unix epoch; buys from it on are refused.
    pub closes_at_ms: Option<i64>,
    /// Buy attempts one buyer may make per minute (Redis' clock, whole minutes); past it
    /// `429 too_many_requests` and nothing reserved. `None`: not limited.
    #[serde(default)]
    pub attempts_per_minute: Option<u32>,
    /// Checkout terms: a reservation is held until paid or `hold_seconds` ran out. `None`: an
    /// instant sale (a reservation settles CONFIRMED without payment).
    #[serde(default)]
    pub checkout: Option<Checkout>,
    /// A queue in front of the opening: buys need an admission. `None`: buyers race, as before.
    #[serde(default)]
    pub waiting_room: Option<super::waiting_room::WaitingRoom>,
}

impl SaleDefinition {
    /// A sale of `stock` named after its id, one unit per buyer, open from now on with no end,
    /// no checkout and no waiting room: the start of a definition built with the `with_*`
    /// methods (tests and tools; an operator's request goes through [`NewSale::validate`]).
    pub fn new(id: SaleId, stock: u32) -> Self {
        Self {
            name: id.to_string(),
            id,
            stock,
            per_user_limit: 1,
            opens_at_ms: None,
            closes_at_ms: None,
            attempts_per_minute: None,
            checkout: None,
            waiting_room: None,
        }
    }

    /// With this name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// With this many units per buyer.
    #[must_use]
    pub fn with_limit(mut self, per_user_limit: u32) -> Self {
        self.per_user_limit = per_user_limit;
        self
    }

    /// Open from `opens_at_ms` until `closes_at_ms` (each `None`: no bound).
    #[must_use]
    pub fn with_window(mut self, opens_at_ms: Option<i64>, closes_at_ms: Option<i64>) -> Self {
        self.opens_at_ms = opens_at_ms;
        self.closes_at_ms = closes_at_ms;
        self
    }

    /// With at most `n` buy attempts per buyer per minute.
    #[must_use]
    pub fn with_attempts_per_minute(mut self, n: u32) -> Self {
        self.attempts_per_minute = Some(n);
        self
    }

    /// A checkout sale on these terms.
    #[must_use]
    pub fn with_checkout(mut self, checkout: Checkout) -> Self {
        self.checkout = Some(checkout);
        self
    }

    /// With this waiting room in front of the opening.
    #[must_use]
    pub fn with_waiting_room(mut self, room: super::waiting_room::WaitingRoom) -> Self {
        self.waiting_room = Some(room);
        self
    }
}

/// Shortest and longest hold a checkout sale may give, in seconds.
pub const HOLD_SECONDS: std::ops::RangeInclusive<u32> = 60..=3600;
/// Largest unit price in minor units: one charge is at most [`super::money::MAX_AMOUNT`].
pub const MAX_PRICE: u64 = super::money::MAX_AMOUNT;

/// How a checkout sale is paid: each unit costs `price` minor units of `currency`, and the buyer
/// has `hold_seconds` from the reservation (Redis' clock) to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkout {
    pub hold_seconds: u32,
    pub price: u64,
    /// ISO 4217, lower case.
    pub currency: String,
}

impl Checkout {
    /// The hold's length in milliseconds.
    pub fn hold_ms(&self) -> i64 {
        i64::from(self.hold_seconds) * 1000
    }
}

/// What a sale's storefront shows besides the live counts: its name and, for a checkout sale,
/// its price. Kept with the sale in Redis (the storefront polls Redis, never the ledger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownSale {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<u32>,
    /// The currency's minor-unit digits (`price` is `units × 10^exponent`): what a page needs
    /// to show the price the buyer pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_exponent: Option<u32>,
}

impl ShownSale {
    pub fn of(def: &SaleDefinition) -> Self {
        let checkout = def.checkout.as_ref();
        Self {
            name: def.name.clone(),
            price: checkout.map(|c| c.price),
            currency: checkout.map(|c| c.currency.clone()),
            hold_seconds: checkout.map(|c| c.hold_seconds),
            currency_exponent: checkout
                .and_then(|c| super::money::Currency::of(&c.currency))
                .map(|c| c.exponent),
        }
    }

    pub fn to_json(&self) -> String {
        // Strings and numbers always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Checkout terms as sent; [`NewCheckout::validate`] checks them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCheckout {
    #[serde(deserialize_with = "super::integer::required")]
    pub hold_seconds: i64,
    #[serde(deserialize_with = "super::integer::required")]
    pub price: i64,
    pub currency: String,
}

impl NewCheckout {
    /// # Errors
    /// `invalid_hold_seconds`, `invalid_price` or `invalid_currency`.
    pub fn validate(self) -> Result<Checkout, InvalidInput> {
        let hold_seconds = u32::try_from(self.hold_seconds)
            .ok()
            .filter(|h| HOLD_SECONDS.contains(h))
            .ok_or_else(|| {
                InvalidInput::new(
                    "invalid_hold_seconds",
                    format!(
                        "checkout.hold_seconds must be an integer from {} to {}",
                        HOLD_SECONDS.start(),
                        HOLD_SECONDS.end()
                    ),
                )
            })?;
        let price = u64::try_from(self.price)
            .ok()
            .filter(|p| (1..=MAX_PRICE).contains(p))
            .ok_or_else(|| {
                InvalidInput::new(
                    "invalid_price",
                    format!(
                        "checkout.price must be an integer from 1 to {MAX_PRICE} (minor units)"
                    ),
                )
            })?;
        let currency = super::money::Currency::of(&self.currency).ok_or_else(|| {
            InvalidInput::new(
                "invalid_currency",
                "checkout.currency must be an ISO 4217 code the payment provider charges in, \
                 e.g. \"eur\" (see docs/api.md)",
            )
        })?;
        if let Some(why) = currency.refuses(price) {
            return Err(InvalidInput::new(
                "invalid_price",
                format!("checkout.price (minor units of {}): {why}", currency.code),
            ));
        }
        let currency = currency.code.to_owned();
        Ok(Checkout {
            hold_seconds,
            price,
            currency,
        })
    }
}

/// An operator's request to create a sale, as sent (`POST /admin/sales`); [`NewSale::validate`]
/// turns it into a [`SaleDefinition`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    pub id: String,
    pub name: String,
    #[serde(deserialize_with = "super::integer::required")]
    pub stock: i64,
    #[serde(deserialize_with = "super::integer::required")]
    pub per_user_limit: i64,
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
    #[serde(default, deserialize_with = "super::integer::optional")]
    pub attempts_per_minute: Option<i64>,
    pub checkout: Option<NewCheckout>,
    pub waiting_room: Option<super::waiting_room::NewWaitingRoom>,
}

impl NewSale {
    /// # Errors
    /// One code per field: `invalid_sale_id`, `invalid_name`, `invalid_stock`,
    /// `invalid_per_user_limit`, `invalid_opens_at`, `invalid_closes_at`, `invalid_window`,
    /// `invalid_attempts_per_minute`, and the checkout terms' (see [`NewCheckout::validate`]) and
    /// the waiting room's (see [`super::waiting_room::NewWaitingRoom::validate`]).
    pub fn validate(self) -> Result<SaleDefinition, InvalidInput> {
        let id = SaleId::parse(&self.id)?;
        let name = self.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_LEN
            || name.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(
                "invalid_name",
                format!("name must be 1-{MAX_NAME_LEN} characters without control characters"),
            ));
        }
        let stock = valid_stock(self.stock)?;
        if !(1..=i64::from(MAX_QUANTITY)).contains(&self.per_user_limit) {
            return Err(InvalidInput::new(
                "invalid_per_user_limit",
                format!("per_user_limit must be an integer from 1 to {MAX_QUANTITY}"),
            ));
        }
        let opens_at_ms = self
            .opens_at
            .as_deref()
            .map(|s| parse_ms(s, "opens_at", "invalid_opens_at"))
            .transpose()?;
        let closes_at_ms = self
            .closes_at
            .as_deref()
            .map(|s| parse_ms(s, "closes_at", "invalid_closes_at"))
            .transpose()?;
        if let (Some(o), Some(c)) = (opens_at_ms, closes_at_ms) {
            if o >= c {
                return Err(InvalidInput::new(
                    "invalid_window",
                    "opens_at must be before closes_at",
                ));
            }
        }
        let attempts_per_minute = match self.attempts_per_minute {
            None => None,
            Some(n) if (1..=i64::from(MAX_ATTEMPTS_PER_MINUTE)).contains(&n) => Some(n as u32),
            Some(_) => {
                return Err(InvalidInput::new(
                    "invalid_attempts_per_minute",
                    format!(
                        "attempts_per_minute must be an integer from 1 to {MAX_ATTEMPTS_PER_MINUTE}"
                    ),
                ))
            }
        };
        let checkout = self.checkout.map(NewCheckout::validate).transpose()?;
        if let Some(c) = &checkout {
            // An order of up to the per-buyer limit is one charge: it must be chargeable too.
            let most = c.price * u64::from(self.per_user_limit as u32);
            if let Some(why) = super::money::Currency::of(&c.currency).and_then(|m| m.refuses(most))
            {
                return Err(InvalidInput::new(
                    "invalid_price",
                    format!("checkout.price × per_user_limit is one buyer's largest charge: {why}"),
                ));
            }
        }
        let waiting_room = self
            .waiting_room
            .map(|w| w.validate(opens_at_ms))
            .transpose()?;
        Ok(SaleDefinition {
            id,
            name,
            stock,
            per_user_limit: self.per_user_limit as u32,
            opens_at_ms,
            closes_at_ms,
            attempts_per_minute,
            checkout,
            waiting_room,
        })
    }
}

/// A stock of 0..=[`MAX_STOCK`].
///
/// # Errors
/// `invalid_stock` otherwise.
pub fn valid_stock(n: i64) -> Result<u32, InvalidInput> {
    if (0..=i64::from(MAX_STOCK)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(InvalidInput::new(
            "invalid_stock",
            format!("stock must be an integer from 0 to {MAX_STOCK}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: &str) -> Result<SaleDefinition, InvalidInput> {
        serde_json::from_str::<NewSale>(json).unwrap().validate()
    }

    /// Found by schemathesis: `"type": "integer"` in the document admits `10.0`.
    #[test]
    fn whole_numbers_written_as_floats_are_the_integers_they_are() {
        let def = create(
            r#"{"id":"s","name":"n","stock":10.0,"per_user_limit":2.0,"attempts_per_minute":5.0,
            "checkout":{"hold_seconds":600.0,"price":1000.0,"currency":"eur"}}"#,
        )
        .unwrap();
        assert_eq!((def.stock, def.per_user_limit), (10, 2));
        assert_eq!(def.attempts_per_minute, Some(5));
        let checkout = def.checkout.unwrap();
        assert_eq!((checkout.hold_seconds, checkout.price), (600, 1000));
    }

    #[test]
    fn a_sale_whose_window_closes_before_it_opens_is_refused() {
        let err = create(
            r#"{"id":"s","name":"n","stock":1,"per_user_limit":1,
            "opens_at":"2026-12-01T10:00:00Z","closes_at":"2026-12-01T09:00:00Z"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_window");
    }

    #[test]
    fn each_bad_sale_field_gets_its_own_error_code() {
        let base = r#"{"id":"s","name":"n","stock":1,"per_user_limit":1}"#;
        assert!(create(base).is_ok());
        for (from, to, code) in [
            (r#""id":"s""#, r#""id":"a b""#, "invalid_sale_id"),
            (r#""name":"n""#, r#""name":"  ""#, "invalid_name"),
            (r#""name":"n""#, r#""name":"a\u0007b""#, "invalid_name"),
            (r#""stock":1"#, r#""stock":-1"#, "invalid_stock"),
            (r#""stock":1"#, r#""stock":10000001"#, "invalid_stock"),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":0"#,
                "invalid_per_user_limit",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":101"#,
                "invalid_per_user_limit",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"opens_at":"soon""#,
                "invalid_opens_at",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"closes_at":"later""#,
                "invalid_closes_at",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"attempts_per_minute":0"#,
                "invalid_attempts_per_minute",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"attempts_per_minute":10001"#,
                "invalid_attempts_per_minute",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":59,"price":100,"currency":"eur"}"#,
                "invalid_hold_seconds",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":3601,"price":100,"currency":"eur"}"#,
                "invalid_hold_seconds",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":60,"price":0,"currency":"eur"}"#,
                "invalid_price",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":60,"price":100000000,"currency":"eur"}"#,
                "invalid_price",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":60,"price":1,"currency":"euro"}"#,
                "invalid_currency",
            ),
            (
                r#""per_user_limit":1"#,
                r#""per_user_limit":1,"checkout":{"hold_seconds":60,"price":1,"currency":"e1r"}"#,
                "invalid_currency",
            ),
        ] {
            assert_eq!(
                create(&base.replace(from, to)).unwrap_err().code,
                code,
                "{to}"
            );
        }
    }

    /// A checkout sale's body with these terms and per-buyer limit.
    fn checkout(price: i64, currency: &str, limit: i64) -> String {
        format!(
            r#"{{"id":"s","name":"n","stock":1,"per_user_limit":{limit},
            "checkout":{{"hold_seconds":600,"price":{price},"currency":"{currency}"}}}}"#
        )
    }

    #[test]
    fn a_currency_the_payment_provider_does_not_charge_in_is_refused() {
        for currency in ["xyz", "btc", "abc"] {
            let e = create(&checkout(500, currency, 1)).unwrap_err();
            assert_eq!(e.code, "invalid_currency", "{currency}");
        }
        assert!(create(&checkout(500, "JPY", 1)).is_ok());
    }

    #[test]
    fn a_price_a_charge_cannot_have_is_refused_at_creation() {
        let refused = |price, currency, limit| create(&checkout(price, currency, limit));
        // Below the currency's minimum charge (EUR 0.50), off KWD's step of ten.
        assert_eq!(refused(49, "eur", 1).unwrap_err().code, "invalid_price");
        assert_eq!(refused(1_255, "kwd", 1).unwrap_err().code, "invalid_price");
        // One buyer's largest order (price × limit) above the provider's eight digits.
        assert_eq!(
            refused(50_000_000, "eur", 2).unwrap_err().code,
            "invalid_price"
        );
        assert!(refused(50_000_000, "eur", 1).is_ok());
    }

    #[test]
    fn the_storefront_is_told_the_minor_unit_digits_of_the_price() {
        let shown = |currency| {
            let def = create(&checkout(500, currency, 1)).unwrap();
            ShownSale::of(&def).currency_exponent
        };
        assert_eq!(shown("jpy"), Some(0), "¥500, not ¥5");
        assert_eq!(shown("eur"), Some(2));
    }

    #[test]
    fn checkout_terms_are_kept_with_the_currency_in_lower_case() {
        let def = create(
            r#"{"id":"s","name":"n","stock":1,"per_user_limit":1,
            "checkout":{"hold_seconds":600,"price":12900,"currency":"EUR"}}"#,
        )
        .unwrap();
        let c = def.checkout.unwrap();
        assert_eq!(
            (c.hold_seconds, c.price, c.currency.as_str()),
            (600, 12900, "eur")
        );
        assert_eq!(c.hold_ms(), 600_000);
    }

    #[test]
    fn names_are_trimmed_and_times_kept_in_milliseconds() {
        let def = create(
            r#"{"id":"s","name":"  Drop  ","stock":0,"per_user_limit":1,"opens_at":"2026-12-01T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(def.name, "Drop");
        assert_eq!(def.opens_at_ms, Some(1_796_119_200_000));
        assert_eq!(def.stock, 0);
    }
}
