//! Who may join a sale's queue: the entry policy. Ids are free, so a waiting room that is fair per
//! buyer id is fair per made-up identity; a policy ties an entry to what the shop's identity
//! issuer verified about the person behind the id (a verified phone number, a customer number).
//!
//! - `require_claims`: claims the caller's identity must carry, each with the value given
//!   (`{"phone_number_verified": true}`); a join without them is refused (`403
//!   entry_not_allowed`), nothing stored.
//! - `one_per`: a claim whose value may hold one place in the sale (`"phone_number"`): a second
//!   identity with the same value is refused (`409 already_entered`). Only a keyed hash of the
//!   value is stored (`TokenKeys::entry_tag`, a key per sale), never the value itself.
//!
//! Claims are compared as API Gateway's JWT authorizer hands them to a function: every value a
//! string (`true` arrives as `"true"`, `42` as `"42"`). A policy's values are written the same way
//! when it is validated, so a JSON `true` in the policy matches the claim `true` of a token.

use crate::domain::InvalidInput;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The claims of the caller's identity, as the JWT authorizer passes them on: name -> value, each
/// value a string. Empty for the local `X-User-Id` shortcut, which carries no claims.
pub type Claims = BTreeMap<String, String>;

/// The most claims a policy may require.
pub const MAX_REQUIRED_CLAIMS: usize = 8;
/// The longest claim name, and the longest value a policy may require.
pub const MAX_CLAIM_NAME_LEN: usize = 64;
pub const MAX_CLAIM_VALUE_LEN: usize = 256;
/// A claim name as the OpenAPI document states it: what [`check_name`] takes.
pub const CLAIM_NAME_PATTERN: &str = "^[!-~]{1,64}$";

/// A sale's entry policy, validated: claim values in the authorizer's string form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// Claims a joiner's identity must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub require_claims: BTreeMap<String, String>,
    /// The claim whose value holds at most one place in the sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_per: Option<String>,
}

/// Why a join is not let in (`403 entry_not_allowed`): the claim it lacks. Which claims a sale
/// requires is no secret (the sale's terms say so); whose identity holds what is never said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    #[error(
        "this sale's queue needs the claim {claim} = {value:?}, which this identity does not carry"
    )]
    Lacks { claim: String, value: String },
    #[error("this sale's queue lets one place per {claim}: this identity carries none")]
    NoOnePer { claim: String },
}

impl Entry {
    /// Whether a joiner with `claims` may enter, and if so the value of the `one_per` claim that
    /// the place will be held under (`None` without `one_per`).
    ///
    /// # Errors
    /// [`NotAllowed`] for the first required claim missing or different, or no `one_per` claim.
    pub fn admit<'c>(&self, claims: &'c Claims) -> Result<Option<&'c str>, NotAllowed> {
        for (claim, value) in &self.require_claims {
            if claims.get(claim) != Some(value) {
                return Err(NotAllowed::Lacks {
                    claim: claim.clone(),
                    value: value.clone(),
                });
            }
        }
        match &self.one_per {
            None => Ok(None),
            Some(claim) => match claims.get(claim).map(String::as_str) {
                Some(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(NotAllowed::NoOnePer {
                    claim: claim.clone(),
                }),
            },
        }
    }

    /// Asks nothing of anyone.
    pub fn is_open(&self) -> bool {
        self.require_claims.is_empty() && self.one_per.is_none()
    }
}

/// An entry policy as an operator sends it, inside `waiting_room`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    #[serde(default)]
    pub require_claims: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub one_per: Option<String>,
}

impl NewEntry {
    /// The policy, its values in the authorizer's string form; `None` when it asks nothing.
    ///
    /// # Errors
    /// `invalid_entry` for a claim name that is empty, too long or not printable ASCII, more than
    /// [`MAX_REQUIRED_CLAIMS`] required, or a required value that is not a string, a boolean or
    /// a number (or is too long).
    pub fn validate(self) -> Result<Option<Entry>, InvalidInput> {
        let mut require_claims = BTreeMap::new();
        let given = self.require_claims.unwrap_or_default();
        if given.len() > MAX_REQUIRED_CLAIMS {
            return Err(invalid(format!(
                "entry.require_claims may name at most {MAX_REQUIRED_CLAIMS} claims"
            )));
        }
        for (claim, value) in given {
            check_name(&claim, "entry.require_claims")?;
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(invalid(format!(
                        "entry.require_claims.{claim} must be a string, a boolean or a number"
                    )))
                }
            };
            if value.is_empty() || value.chars().count() > MAX_CLAIM_VALUE_LEN {
                return Err(invalid(format!(
                    "entry.require_claims.{claim} must be 1-{MAX_CLAIM_VALUE_LEN} characters"
                )));
            }
            require_claims.insert(claim, value);
        }
        if let Some(claim) = &self.one_per {
            check_name(claim, "entry.one_per")?;
        }
        let entry = Entry {
            require_claims,
            one_per: self.one_per,
        };
        Ok((!entry.is_open()).then_some(entry))
    }
}

/// A claim name: 1-64 printable ASCII characters without spaces (`phone_number`, `cust:tier`).
fn check_name(name: &str, field: &str) -> Result<(), InvalidInput> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLAIM_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: a claim name is 1-{MAX_CLAIM_NAME_LEN} printable ASCII characters, no spaces"
        )))
    }
}

fn invalid(message: String) -> InvalidInput {
    InvalidInput::new("invalid_entry", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Result<Option<Entry>, InvalidInput> {
        serde_json::from_str::<NewEntry>(json).unwrap().validate()
    }

    fn claims(pairs: &[(&str, &str)]) -> Claims {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn phone_policy() -> Entry {
        entry(r#"{"require_claims":{"phone_number_verified":true},"one_per":"phone_number"}"#)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_policys_json_values_are_kept_in_the_authorizers_string_form() {
        let e = entry(r#"{"require_claims":{"v":true,"tier":3,"cust:plan":"gold"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            e.require_claims,
            claims(&[("v", "true"), ("tier", "3"), ("cust:plan", "gold")])
        );
    }

    #[test]
    fn an_identity_with_the_required_claims_enters_under_its_one_per_value() {
        let c = claims(&[("phone_number_verified", "true"), ("phone_number", "+44 1")]);
        assert_eq!(phone_policy().admit(&c), Ok(Some("+44 1")));
    }

    #[test]
    fn an_identity_lacking_a_required_claim_or_its_value_is_not_let_in() {
        let policy = phone_policy();
        for c in [
            claims(&[("phone_number", "+44 1")]),
            claims(&[
                ("phone_number_verified", "false"),
                ("phone_number", "+44 1"),
            ]),
            Claims::new(),
        ] {
            assert!(
                matches!(policy.admit(&c), Err(NotAllowed::Lacks { .. })),
                "{c:?}"
            );
        }
    }

    #[test]
    fn an_identity_without_the_one_per_claim_is_not_let_in() {
        let c = claims(&[("phone_number_verified", "true")]);
        assert_eq!(
            phone_policy().admit(&c),
            Err(NotAllowed::NoOnePer {
                claim: "phone_number".into()
            })
        );
    }

    #[test]
    fn a_policy_that_asks_nothing_is_no_policy() {
        assert_eq!(entry("{}").unwrap(), None);
        assert_eq!(entry(r#"{"require_claims":{}}"#).unwrap(), None);
    }

    #[test]
    fn each_bad_policy_is_refused_as_invalid_entry() {
        let many: String = (0..9)
            .map(|i| format!("\"c{i}\":true"))
            .collect::<Vec<_>>()
            .join(",");
        for json in [
            r#"{"require_claims":{"":true}}"#.to_owned(),
            r#"{"require_claims":{"a b":true}}"#.to_owned(),
            r#"{"require_claims":{"v":null}}"#.to_owned(),
            r#"{"require_claims":{"v":[1]}}"#.to_owned(),
            r#"{"require_claims":{"v":""}}"#.to_owned(),
            format!(r#"{{"require_claims":{{"v":"{}"}}}}"#, "x".repeat(257)),
            format!(r#"{{"require_claims":{{{many}}}}}"#),
            r#"{"one_per":""}"#.to_owned(),
            format!(r#"{{"one_per":"{}"}}"#, "p".repeat(65)),
        ] {
            assert_eq!(entry(&json).unwrap_err().code, "invalid_entry", "{json}");
        }
    }
}
