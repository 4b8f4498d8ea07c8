use super::*;

#[tokio::test]
async fn every_api_error_maps_to_its_status_and_server_errors_hide_their_detail() {
    for (e, status) in [
        (ApiError::Unauthenticated, 401),
        (ApiError::Forbidden, 403),
        (ApiError::RouteNotFound, 404),
        (ApiError::MethodNotAllowed, 405),
        (ApiError::BodyTooLarge { limit: 1 }, 413),
        (ApiError::UnsupportedMediaType, 415),
        (ApiError::Refused(Refusal::SoldOut), 409),
        (ApiError::Refused(Refusal::UnknownSale), 404),
        (ApiError::Refused(Refusal::NotOpen { opens_at_ms: 0 }), 403),
        (ApiError::Unavailable("db at 10.0.0.1 down".into()), 503),
        (ApiError::NotReserved("redis at 10.0.0.1 down".into()), 503),
        (
            ApiError::OutcomeUnknown {
                order_id: uuid::Uuid::nil(),
                source: "redis at 10.0.0.1 timed out".into(),
            },
            503,
        ),
        (ApiError::RequestTimeout, 408),
        (ApiError::Internal("secret detail".into()), 500),
    ] {
        let resp = e.into_response();
        assert_eq!(resp.status().as_u16(), status);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !text.contains("10.0.0.1") && !text.contains("secret"),
            "{text}"
        );
    }
}

#[test]
fn a_deadlock_or_a_race_in_the_ledger_is_503_retry_and_a_refused_statement_is_500() {
    let busy = ApiError::from(DbError::Busy("40P01: deadlock detected".into()));
    assert_eq!(busy.parts().0, StatusCode::SERVICE_UNAVAILABLE);
    let raced = ApiError::from(DbError::Raced {
        what: "sale s".into(),
    });
    assert_eq!(raced.parts().0, StatusCode::SERVICE_UNAVAILABLE);
    let refused = ApiError::from(DbError::Query("23514: check violation".into()));
    assert_eq!(refused.parts().0, StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn a_reset_that_began_and_waits_for_orders_in_play_says_the_sale_is_paused() {
    let e = ApiError::from(flashflow_app::admin::AdminError::ResetWaits {
        sale: SaleId::parse("s").unwrap(),
        in_play: 2,
    });
    let (status, code, message) = e.parts();
    assert_eq!(
        (status, code),
        (StatusCode::SERVICE_UNAVAILABLE, "reset_incomplete")
    );
    assert!(
        message.contains("paused") && message.contains("run again"),
        "{message}"
    );
}
