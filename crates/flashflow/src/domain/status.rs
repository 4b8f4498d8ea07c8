//! An order's status as buyers see it (`GET /orders/{id}`).

use super::{BuyerId, OrderMessage, SaleId, Settlement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[derive(utoipa::ToSchema)]
pub enum OrderState {
    /// Reserved in Redis, not settled yet.
    Pending,
    /// Settled; paid for a checkout sale.
    Confirmed,
    Rejected,
    /// A checkout sale's order, recorded and waiting for payment until `pay_by`.
    Held,
    /// Its hold ran out unpaid; its stock went back.
    Expired,
    /// Its buyer cancelled the hold; its stock went back.
    Cancelled,
    /// Paid after its hold ended: the payment was refunded, the stock not taken again.
    Refunded,
    /// A retry of an earlier order (same buyer and idempotency key) that Redis did not recognise:
    /// the earlier order, `duplicate_of`, is the one that counts.
    Duplicate,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Duplicate => "DUPLICATE",
            Self::Held => "HELD",
            Self::Expired => "EXPIRED",
            Self::Cancelled => "CANCELLED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// The state written for a settled order; `None` for an order that was not recorded.
    pub fn settled(s: Settlement) -> Option<Self> {
        match s {
            Settlement::Confirmed => Some(Self::Confirmed),
            Settlement::Held => Some(Self::Held),
            Settlement::Rejected | Settlement::Stale => Some(Self::Rejected),
            Settlement::Duplicate { .. } => Some(Self::Duplicate),
            Settlement::UnknownSale => None,
        }
    }

    /// # Errors
    /// The text when it names no state.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "CONFIRMED" => Ok(Self::Confirmed),
            "REJECTED" => Ok(Self::Rejected),
            "DUPLICATE" => Ok(Self::Duplicate),
            "HELD" => Ok(Self::Held),
            "EXPIRED" => Ok(Self::Expired),
            "CANCELLED" => Ok(Self::Cancelled),
            "REFUNDED" => Ok(Self::Refunded),
            other => Err(format!("unknown order state {other:?}")),
        }
    }

    /// How far along an order in this state is: a status store never replaces a state with one
    /// of a lower rank, so a late write (a re-queued `HELD`) cannot undo a payment.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Held => 1,
            Self::Confirmed
            | Self::Rejected
            | Self::Duplicate
            | Self::Expired
            | Self::Cancelled => 2,
            Self::Refunded => 3,
        }
    }
}

/// One order's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderStatus {
    pub order_id: Uuid,
    pub sale_id: SaleId,
    pub buyer: BuyerId,
    pub quantity: u32,
    pub status: OrderState,
    /// For a [`OrderState::Duplicate`]: the order that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    /// For a checkout sale's order: when its hold ends (ms since the epoch, Redis' clock). The
    /// API shows it as `pay_by` (RFC 3339, see `api::orders::view`).
    #[serde(default, skip_serializing)]
    pub pay_by_ms: Option<i64>,
}

impl OrderStatus {
    /// The status of the order in `msg`.
    pub fn of(msg: &OrderMessage, status: OrderState) -> Self {
        Self {
            order_id: msg.order_id,
            sale_id: msg.sale_id.clone(),
            buyer: msg.buyer.clone(),
            quantity: msg.quantity.get(),
            status,
            duplicate_of: None,
            pay_by_ms: msg.pay_by_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_the_api_shows_them_and_parse_back() {
        for s in [
            OrderState::Pending,
            OrderState::Confirmed,
            OrderState::Rejected,
            OrderState::Duplicate,
            OrderState::Held,
            OrderState::Expired,
            OrderState::Cancelled,
            OrderState::Refunded,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            assert_eq!(OrderState::parse(s.as_str()), Ok(s));
        }
        assert!(OrderState::parse("UNKNOWN_SALE").is_err());
        assert_eq!(OrderState::settled(Settlement::UnknownSale), None);
    }
}
