//! Pagination of lists: `?limit=` and `&offset=`, answered with the items and the total.
//!
//! `limit` is 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]); `offset` counts items skipped
//! (default 0). A response carries `items`, the `total` number of items the list has, and the
//! `limit` and `offset` used, so the next page is `offset + limit` while that is below `total`.
//! Offsets are simple and let a client jump to any page; items inserted or deleted between two
//! requests can shift a page by that many items.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::db::Page;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most items per page.
pub const MAX_LIMIT: u32 = 200;

/// Which page of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<u64>,
}

impl PageParams {
    /// The page asked for; a `limit` out of range is refused naming `limit`.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("must be between 1 and {MAX_LIMIT}"),
            )
            .with_field("limit"));
        }
        let offset = i64::try_from(self.offset.unwrap_or(0)).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_query",
                "too large",
            )
            .with_field("offset")
        })?;
        Ok(Page {
            limit: i64::from(limit),
            offset,
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Paginated<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The items skipped.
    pub offset: u64,
}

impl<T> Paginated<T> {
    /// A page of `items` out of `total`, for the page asked for.
    pub fn new(items: Vec<T>, total: i64, page: Page) -> Self {
        Paginated {
            items,
            total: u64::try_from(total).unwrap_or(0),
            limit: u32::try_from(page.limit).unwrap_or(MAX_LIMIT),
            offset: u64::try_from(page.offset).unwrap_or(0),
        }
    }

    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paginated<U> {
        Paginated {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            PageParams::default().page().unwrap(),
            Page {
                limit: 50,
                offset: 0
            }
        );
        let ok = PageParams {
            limit: Some(200),
            offset: Some(400),
        };
        assert_eq!(
            ok.page().unwrap(),
            Page {
                limit: 200,
                offset: 400
            }
        );
        for bad in [0, 201] {
            let e = PageParams {
                limit: Some(bad),
                offset: None,
            }
            .page()
            .unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.field.as_deref()),
                (400, Some("limit"))
            );
        }
        let e = PageParams {
            limit: None,
            offset: Some(u64::MAX),
        }
        .page()
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("offset"));
    }
}
