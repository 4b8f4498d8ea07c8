//! Money as the payment provider takes it: the currencies Stripe charges in, each with its
//! minor-unit exponent (an amount of 500 is ¥500 but €5.00), and the limits on one charge.
//!
//! The table is Stripe's list of presentment currencies
//! (<https://docs.stripe.com/currencies>): zero-decimal currencies take whole units (UGX among
//! them, as the list shows it), the three-decimal ones take amounts in multiples of ten, and no
//! charge may be above eight digits of minor units or below the currency's minimum (given for the
//! currencies Stripe lists one for; for the others, 50 minor units). One special case
//! (<https://docs.stripe.com/currencies#special-cases>): ISK stays a two-decimal currency in the
//! API (an amount of 100 is one króna) but takes whole krónur only, amounts in multiples of 100.

/// The largest amount of one charge, in minor units (Stripe: eight digits).
pub const MAX_AMOUNT: u64 = 99_999_999;

/// A currency Stripe charges in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    /// ISO 4217, lower case as Stripe writes it.
    pub code: &'static str,
    /// Digits after the decimal point: an amount is `units × 10^exponent`.
    pub exponent: u32,
    /// The smallest amount one charge may have, in minor units.
    pub min_amount: u64,
    /// Amounts are multiples of this many minor units (10 for the three-decimal currencies, 100
    /// for ISK, else 1).
    pub step: u64,
}

impl Currency {
    /// Stripe's currency `code` (any case), or `None` when Stripe does not charge in it.
    pub fn of(code: &str) -> Option<Self> {
        let code = code.to_ascii_lowercase();
        let found = TWO_DECIMAL
            .iter()
            .map(|c| (*c, 2))
            .chain(ZERO_DECIMAL.iter().map(|c| (*c, 0)))
            .chain(THREE_DECIMAL.iter().map(|c| (*c, 3)))
            .find(|(c, _)| *c == code)?;
        let (code, exponent) = found;
        let min_amount = MINIMUMS
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(50, |(_, m)| *m);
        let step = match (exponent, WHOLE_UNITS_ONLY.contains(&code)) {
            (3, _) => 10,
            (2, true) => 100,
            _ => 1,
        };
        Some(Self {
            code,
            exponent,
            min_amount,
            step,
        })
    }

    /// Every currency code Stripe charges in (lower case).
    pub fn codes() -> impl Iterator<Item = &'static str> {
        TWO_DECIMAL
            .iter()
            .chain(ZERO_DECIMAL)
            .chain(THREE_DECIMAL)
            .copied()
    }

    /// Why `amount` (minor units) cannot be charged in this currency, if it cannot.
    pub fn refuses(&self, amount: u64) -> Option<String> {
        let c = self.code;
        if amount < self.min_amount {
            return Some(format!(
                "{c} charges must be at least {} ({} minor units)",
                self.format(self.min_amount),
                self.min_amount
            ));
        }
        if amount > MAX_AMOUNT {
            return Some(format!(
                "a charge is at most {MAX_AMOUNT} minor units ({})",
                self.format(MAX_AMOUNT)
            ));
        }
        if !amount.is_multiple_of(self.step) {
            return Some(format!(
                "{c} amounts must be multiples of {} minor units",
                self.step
            ));
        }
        None
    }

    /// `amount` minor units as a decimal number with the currency's code, e.g. `129.00 EUR`.
    pub fn format(&self, amount: u64) -> String {
        let code = self.code.to_ascii_uppercase();
        if self.exponent == 0 {
            return format!("{amount} {code}");
        }
        let scale = 10u64.pow(self.exponent);
        let width = self.exponent as usize;
        format!("{}.{:0width$} {code}", amount / scale, amount % scale)
    }
}

/// Stripe's zero-decimal currencies.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Two-decimal in Stripe's API, charged in whole units only (amounts in multiples of 100).
const WHOLE_UNITS_ONLY: &[&str] = &["isk"];

/// Stripe's three-decimal currencies: amounts in multiples of ten.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Stripe's other presentment currencies, two decimals each.
const TWO_DECIMAL: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf", "chf", "cny",
    "cop", "crc", "cve", "czk", "dkk", "dop", "dzd", "egp", "etb", "eur", "fjd", "fkp", "gbp",
    "gel", "gip", "gmd", "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "isk",
    "jmd", "kes", "kgs", "khr", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl",
    "mkd", "mmk", "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio",
    "nok", "npr", "nzd", "pab", "pen", "pgk", "php", "pkr", "pln", "qar", "ron", "rsd", "rub",
    "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "szl", "thb", "tjs", "top",
    "try", "ttd", "twd", "tzs", "uah", "usd", "uyu", "uzs", "wst", "xcd", "yer", "zar", "zmw",
];

/// The minimum charge Stripe lists per currency, in minor units.
const MINIMUMS: &[(&str, u64)] = &[
    ("usd", 50),
    ("aed", 200),
    ("aud", 50),
    ("bgn", 100),
    ("brl", 50),
    ("cad", 50),
    ("chf", 50),
    ("czk", 1500),
    ("dkk", 250),
    ("eur", 50),
    ("gbp", 30),
    ("hkd", 400),
    ("huf", 17500),
    ("inr", 50),
    ("jpy", 50),
    ("mxn", 1000),
    ("myr", 200),
    ("nok", 300),
    ("nzd", 50),
    ("pln", 200),
    ("ron", 200),
    ("sek", 300),
    ("sgd", 50),
    ("thb", 1000),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_decimal_currency_counts_whole_units_and_a_two_decimal_one_cents() {
        let jpy = Currency::of("JPY").unwrap();
        assert_eq!((jpy.exponent, jpy.format(500)), (0, "500 JPY".to_owned()));
        let eur = Currency::of("eur").unwrap();
        assert_eq!(eur.format(12_900), "129.00 EUR");
        assert_eq!(eur.format(5), "0.05 EUR");
        assert_eq!(Currency::of("kwd").unwrap().format(1_250), "1.250 KWD");
    }

    #[test]
    fn a_currency_stripe_does_not_charge_in_is_unknown() {
        for code in ["xyz", "eu", "euro", "btc", ""] {
            assert_eq!(Currency::of(code), None, "{code}");
        }
    }

    #[test]
    fn amounts_below_the_minimum_above_eight_digits_or_off_the_three_decimal_step_are_refused() {
        let eur = Currency::of("eur").unwrap();
        assert!(eur.refuses(49).is_some());
        assert!(eur.refuses(50).is_none());
        assert!(eur.refuses(MAX_AMOUNT).is_none());
        assert!(eur.refuses(MAX_AMOUNT + 1).is_some());
        let kwd = Currency::of("kwd").unwrap();
        assert!(kwd.refuses(1_255).is_some());
        assert!(kwd.refuses(1_250).is_none());
    }

    #[test]
    fn isk_is_two_decimal_in_the_api_and_charged_in_whole_kronur_only() {
        let isk = Currency::of("isk").unwrap();
        assert_eq!(isk.exponent, 2, "an amount of 100 is one króna");
        assert_eq!(
            isk.format(50_000),
            "500.00 ISK",
            "ISK 500 is 50000, never 500"
        );
        assert!(isk.refuses(50_050).is_some(), "no fraction of a króna");
        assert!(isk.refuses(50_000).is_none());
    }

    #[test]
    fn ugx_is_zero_decimal_as_stripes_list_shows_it() {
        let ugx = Currency::of("ugx").unwrap();
        assert_eq!((ugx.exponent, ugx.step), (0, 1));
        assert_eq!(ugx.format(5_000), "5000 UGX");
    }
}
