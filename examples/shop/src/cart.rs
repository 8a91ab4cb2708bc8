//! The cart: one session key per SKU, so concurrent adds of different SKUs never collide.

use axum::body::Bytes;
use axum::extract::Path;
use axum::Json;
use serde::{Deserialize, Serialize};
use tower_stateless::Session;

use crate::{current_user, parse, ApiError};

const ITEM_PREFIX: &str = "cart:";
const MAX_SKU_LEN: usize = 64;

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

pub(crate) async fn add(session: Session, body: Bytes) -> Result<Json<Item>, ApiError> {
    let Item { sku, qty } = parse(&body)?;
    if qty < 1 {
        return Err(ApiError::BadRequest("qty must be at least 1".into()));
    }
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(ApiError::BadRequest(format!(
            "sku must be 1 to {MAX_SKU_LEN} characters"
        )));
    }
    current_user(&session).await?;
    let key = item_key(&sku);
    let qty = session
        .get::<u64>(&key)
        .await?
        .unwrap_or(0)
        .saturating_add(qty);
    session.insert(key, &qty)?;
    Ok(Json(Item { sku, qty }))
}

pub(crate) async fn item(
    session: Session,
    Path(sku): Path<String>,
) -> Result<Json<Item>, ApiError> {
    current_user(&session).await?;
    let qty = session.get::<u64>(&item_key(&sku)).await?.unwrap_or(0);
    Ok(Json(Item { sku, qty }))
}

/// Every cart line, sorted by SKU (session keys come back sorted).
async fn items(session: &Session) -> Result<Vec<Item>, ApiError> {
    let mut items = Vec::new();
    for key in session.keys().await? {
        if let Some(sku) = key.strip_prefix(ITEM_PREFIX) {
            let qty = session.get::<u64>(&key).await?.unwrap_or(0);
            items.push(Item {
                sku: sku.to_owned(),
                qty,
            });
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
    for item in &items {
        session.remove(item_key(&item.sku));
    }
    Ok(Json(Order {
        order: crate::random_id("ord"),
        items,
    }))
}
