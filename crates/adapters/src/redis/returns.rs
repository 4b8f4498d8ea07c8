//! Checkout's returns: a hold's end carried to Redis, once per order (`return_stock.lua`): an
//! ended hold's units back, a paid one no longer open.

use super::OrStoreError;
use super::{failed, RedisStore, SaleKeys};
use flashflow::domain::OrderState;
use flashflow::ports::{HoldRecord, ReturnStock, Returned, StoreError};

impl ReturnStock for RedisStore {
    async fn return_stock(&self, hold: &HoldRecord) -> Result<Returned, StoreError> {
        let o = &hold.status;
        let keys = SaleKeys::new(&o.sale_id);
        let answer: String = self
            .return_stock
            .evalsha_with_reload(
                &self.client,
                [
                    vec![
                        keys.sale.clone(),
                        keys.buyers.clone(),
                        keys.returned(),
                        keys.wake(),
                        keys.holds(),
                    ],
                    keys.all()[2..].to_vec(),
                ]
                .concat(),
                vec![
                    o.order_id.to_string(),
                    o.buyer.as_str().to_owned(),
                    o.quantity.to_string(),
                    hold.round.to_string(),
                    // A paid hold gives nothing back; it only stops being open.
                    if o.status == OrderState::Confirmed {
                        "kept"
                    } else {
                        "return"
                    }
                    .to_owned(),
                ],
            )
            .await
            .or_store()?;
        if answer != "NO_SALE" {
            // The ledger records the return once this answers: Redis' half must survive a
            // failover first (a repeat answers ALREADY, so asking again is safe).
            self.durable(&keys).await?;
        }
        Ok(match answer.as_str() {
            "RETURNED" => {
                // Buyable again: back in the registry the sweeper and order lookups walk.
                self.register_sale(&o.sale_id).await?;
                Returned::Now
            }
            "KEPT" => Returned::Now,
            "ALREADY" | "OTHER_ROUND" => Returned::Before,
            "NO_SALE" => Returned::NotLoaded,
            other => {
                return Err(failed(format!(
                    "return_stock.lua: unknown answer {other:?}"
                )))
            }
        })
    }
}
