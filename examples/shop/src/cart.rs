//! The cart: one session key per SKU, each an integer changed only by atomic increments,
//! so concurrent adds, of one SKU or of several, from any instance, all count.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tower_stateless::{ErrorKind, Session};

use crate::account::current_user;
use crate::error::ApiError;
use crate::json::JsonBody;

pub(crate) const ITEM_PREFIX: &str = "cart:";
const MAX_SKU_LEN: usize = 64;
/// The most units one add may carry.
const MAX_QTY: u64 = 1000;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    sku: String,
    qty: u64,
}

#[derive(Serialize)]
pub(crate) struct Cart {
    items: Vec<Item>,
}

#[derive(Serialize)]
pub(crate) struct Order {
    order: String,
    items: Vec<Item>,
}

fn item_key(sku: &str) -> String {
    format!("{ITEM_PREFIX}{sku}")
}

pub(crate) async fn add(
    session: Session,
    JsonBody(Item { sku, qty }): JsonBody<Item>,
) -> Result<Json<Item>, ApiError> {
    if !(1..=MAX_QTY).contains(&qty) {
        return Err(ApiError::BadRequest(format!("qty must be 1 to {MAX_QTY}")));
    }
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(ApiError::BadRequest(format!(
            "sku must be 1 to {MAX_SKU_LEN} characters"
        )));
    }
    current_user(&session).await?;
    let delta = i64::try_from(qty).expect("qty is at most 1000");
    let total = match session.increment(&item_key(&sku), delta).await {
        Ok(total) => total,
        Err(error) if error.kind() == ErrorKind::Overflow => {
            return Err(ApiError::BadRequest(format!(
                "the cart cannot hold that many of {sku}"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    Ok(Json(Item {
        sku,
        qty: u64::try_from(total).unwrap_or(0),
    }))
}

pub(crate) async fn item(
    session: Session,
    Path(sku): Path<String>,
) -> Result<Json<Item>, ApiError> {
    current_user(&session).await?;
    let qty = session.get::<u64>(&item_key(&sku)).await?.unwrap_or(0);
    Ok(Json(Item { sku, qty }))
}

#[derive(Deserialize)]
pub(crate) struct Quantity {
    qty: u64,
}

/// Sets a line to `qty` units (0 removes it). The change is the difference from what this
/// request read, applied as one increment at write-back, like checkout's: an add that
/// lands meanwhile from another request still counts.
pub(crate) async fn set(
    session: Session,
    Path(sku): Path<String>,
    JsonBody(Quantity { qty }): JsonBody<Quantity>,
) -> Result<Json<Item>, ApiError> {
    if qty > MAX_QTY {
        return Err(ApiError::BadRequest(format!("qty must be 0 to {MAX_QTY}")));
    }
    change_to(&session, &sku, qty).await?;
    Ok(Json(Item { sku, qty }))
}

/// Takes a line out of the cart (whatever it held when read).
pub(crate) async fn remove(
    session: Session,
    Path(sku): Path<String>,
) -> Result<StatusCode, ApiError> {
    change_to(&session, &sku, 0).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_to(session: &Session, sku: &str, qty: u64) -> Result<(), ApiError> {
    current_user(session).await?;
    let key = item_key(sku);
    let held = session.get::<i64>(&key).await?.unwrap_or(0).max(0);
    let wanted = i64::try_from(qty).expect("qty is at most 1000");
    if wanted != held {
        session.increment_later(key, wanted - held)?;
    }
    Ok(())
}

/// Every cart line holding at least one unit, sorted by SKU (session keys come back
/// sorted).
async fn items(session: &Session) -> Result<Vec<Item>, ApiError> {
    let mut items = Vec::new();
    for key in session.keys().await? {
        if let Some(sku) = key.strip_prefix(ITEM_PREFIX) {
            let qty = session.get::<i64>(&key).await?.unwrap_or(0);
            if let Ok(qty @ 1..) = u64::try_from(qty) {
                items.push(Item {
                    sku: sku.to_owned(),
                    qty,
                });
            }
        }
    }
    Ok(items)
}

pub(crate) async fn list(session: Session) -> Result<Json<Cart>, ApiError> {
    current_user(&session).await?;
    Ok(Json(Cart {
        items: items(&session).await?,
    }))
}

pub(crate) async fn checkout(session: Session) -> Result<Json<Order>, ApiError> {
    current_user(&session).await?;
    let items = items(&session).await?;
    if items.is_empty() {
        return Err(ApiError::Conflict("the cart is empty"));
    }
    // Take out exactly what was ordered, in the one write-back, all or nothing: an add
    // that lands meanwhile stays in the cart.
    for item in &items {
        let qty = i64::try_from(item.qty).expect("a cart line fits in i64");
        session.increment_later(item_key(&item.sku), -qty)?;
    }
    Ok(Json(Order {
        order: crate::ids::random_id("ord"),
        items,
    }))
}
