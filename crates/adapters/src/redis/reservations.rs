//! The hot path: `reserve.lua`, one atomic script per buy.

use super::{failed, RedisStore, SaleKeys};
use flashflow::domain::{
    BuyerId, IdempotencyKey, OrderState, Refusal, Reservation, ReserveRequest, SaleId,
    ORDER_MESSAGE_VERSION,
};
use flashflow::ports::reservations::ORDER_REMEMBERED_FOR;
use flashflow::ports::{ReservationStore, StoreError};
use uuid::Uuid;

impl ReservationStore for RedisStore {
    /// Always the script, never the sold-out memory: buy asks the memory once, before it makes
    /// an order id ([`ReservationStore::refusal_from_memory`]), and a call here for an order id
    /// that was sent before (an in-doubt retry) must get the script's memory of that order, or a
    /// `409 sold_out` could answer an order that took the last unit.
    async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, StoreError> {
        let keys = SaleKeys::new(&req.sale);
        let order_id = req.order_id.to_string();
        let mut script_keys = keys.all();
        script_keys.extend([
            keys.order(req.order_id),
            keys.room_batch_uses(),
            keys.room_spent(),
            keys.room_used(),
            keys.holds(),
        ]);
        let admission = req.admission.map_or(String::new(), |a| {
            format!("{} {} {} {}", a.index, a.batch, a.expires_ms, a.epoch)
        });
        let before = self.before_sending();
        let reply: Vec<String> = self
            .reserve
            .evalsha_with_reload(
                &self.client,
                script_keys,
                vec![
                    order_id.as_str(),
                    req.sale.as_str(),
                    req.buyer.as_str(),
                    &req.quantity.get().to_string(),
                    req.idempotency_key.as_ref().map_or("", |k| k.as_str()),
                    &ORDER_MESSAGE_VERSION.to_string(),
                    &ORDER_REMEMBERED_FOR.as_millis().to_string(),
                    req.signature.as_deref().unwrap_or(""),
                    &admission,
                    if self.pause_on_failover { "1" } else { "" },
                ],
            )
            .await
            .map_err(|e| self.outcome_of(e, before))?;
        let mut reply = reply.into_iter();
        let (status, detail) = (
            reply.next().unwrap_or_default(),
            reply.next().unwrap_or_default(),
        );
        let pay_by_ms = reply.next().and_then(|p| p.parse().ok());
        let reply = parse_reply(&status, detail, req.order_id, pay_by_ms)?;
        if matches!(
            reply,
            Reservation::Reserved { .. } | Reservation::Duplicate { .. }
        ) {
            // The answer promises the order: it must outlive a failover first. A replay too:
            // the run it repeats may have been answered in doubt.
            self.durable(&keys).await?;
        }
        if reply == Reservation::Refused(Refusal::UnknownSale) && !self.holds_sales().await? {
            // Not an unknown sale: Redis lost its data (a restart without persistence, a flush).
            // The ledger still has the sale; the operator's rehydrate brings it back.
            return Err(StoreError::Unavailable(
                "redis holds no sales: its data was lost; rehydrate the sales".into(),
            ));
        }
        if let Reservation::Refused(refusal) = &reply {
            self.learn_later(&req.sale, refusal);
        }
        Ok(reply)
    }

    fn refusal_from_memory(
        &self,
        sale: &SaleId,
        buyer: &BuyerId,
        key: Option<&IdempotencyKey>,
    ) -> Option<Refusal> {
        let found = self.sold_out_cache()?.lookup(sale, buyer, key);
        if found.refresh {
            self.refresh_later(sale);
        }
        found.refusal
    }
}

/// `reserve.lua`'s answer: a status word and its detail.
fn parse_reply(
    status: &str,
    detail: String,
    order_id: Uuid,
    pay_by_ms: Option<i64>,
) -> Result<Reservation, StoreError> {
    let num = |d: &str| -> Result<i64, StoreError> {
        d.parse()
            .map_err(|_| failed(format!("reserve.lua: bad number {d:?} for {status}")))
    };
    let id = |d: &str| -> Result<Uuid, StoreError> {
        d.parse()
            .map_err(|_| failed(format!("reserve.lua: bad order id {detail:?}")))
    };
    Ok(match status {
        "RESERVED" => Reservation::Reserved {
            order_id,
            message: detail,
            pay_by_ms,
        },
        "DUPLICATE" => {
            let (order, state) = detail.split_once(' ').unwrap_or((detail.as_str(), ""));
            Reservation::Duplicate {
                order_id: id(order)?,
                state: (!state.is_empty())
                    .then(|| OrderState::parse(state))
                    .transpose()
                    .map_err(failed)?,
            }
        }
        "KEY_REUSED" => Reservation::Refused(Refusal::KeyReused {
            order_id: id(&detail)?,
        }),
        "NO_SALE" => Reservation::Refused(Refusal::UnknownSale),
        "NOT_ADMITTED" => Reservation::Refused(Refusal::NotAdmitted),
        "ADMISSION_USED" => Reservation::Refused(Refusal::AdmissionUsed {
            order_id: id(&detail)?,
        }),
        "FAILED_OVER" => {
            return Err(StoreError::Unavailable(
                format!(
                    "redis failed over (promoted from {detail}) since the sale's counts were \
                     rebuilt: paused until the operator rehydrates it"
                )
                .into(),
            ))
        }
        "RESETTING" => {
            return Err(StoreError::Unavailable(
                format!("the sale is being reset to round {detail}").into(),
            ))
        }
        "TOO_MANY" => Reservation::Refused(Refusal::TooManyAttempts {
            retry_after_s: num(&detail)?.clamp(1, 60) as u32,
        }),
        "NOT_OPEN" => Reservation::Refused(Refusal::NotOpen {
            opens_at_ms: num(&detail)?,
        }),
        "CLOSED" => Reservation::Refused(Refusal::Closed {
            closes_at_ms: num(&detail)?,
        }),
        "LIMIT" => Reservation::Refused(Refusal::LimitReached {
            allowance: num(&detail)?.max(0) as u32,
        }),
        "SOLD_OUT" => Reservation::Refused(Refusal::SoldOut),
        "INSUFFICIENT" => Reservation::Refused(Refusal::InsufficientStock {
            remaining: num(&detail)?.max(0) as u32,
        }),
        other => return Err(failed(format!("reserve.lua: unknown status {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_script_status_is_an_error_not_a_reservation() {
        assert!(parse_reply("WHAT", String::new(), Uuid::nil(), None).is_err());
        assert!(parse_reply("LIMIT", "x".into(), Uuid::nil(), None).is_err());
    }
}
