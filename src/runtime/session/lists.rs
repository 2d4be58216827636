//! The list methods (`tools/list`, `resources/list`, `resources/templates/list`,
//! `prompts/list`) with their paging, and `completion/complete`.

use serde::Serialize;

use super::Session;
use crate::protocol::era::{self, Era};
use crate::protocol::mcp::PaginatedParams;
use crate::protocol::prompt::CompleteParams;
use crate::protocol::{reply, Reply, RpcError};

impl Session {
    /// One page of a list method: `{key: [def(item)...], nextCursor?}`, plus the cache
    /// fields in 2026-07-28.
    pub(super) fn list_page<T, D: Serialize>(
        &self,
        params: &PaginatedParams,
        era: Option<Era>,
        key: &str,
        all: &[T],
        def: impl Fn(&T) -> &D,
    ) -> Reply {
        let (start, end, next) = page(
            params.cursor.as_deref(),
            all.len(),
            self.service.limits.page_size,
        )?;
        let items: Vec<&D> = all[start..end].iter().map(def).collect();
        let mut map = serde_json::Map::new();
        map.insert(
            key.to_owned(),
            serde_json::to_value(items).map_err(RpcError::internal)?,
        );
        if let Some(next) = next {
            map.insert("nextCursor".to_owned(), next.into());
        }
        let mut result = serde_json::Value::Object(map);
        if era == Some(Era::Modern) {
            era::add_cache_fields(&mut result, era::LIST_TTL_MS, era::CacheScope::Public);
        }
        reply(&result)
    }

    pub(super) fn complete(&self, params: &CompleteParams) -> Reply {
        let context = params.context.clone().unwrap_or_default().arguments;
        let (values, total, has_more) = self.service.prompts.complete(
            &params.reference,
            &params.argument.name,
            &params.argument.value,
            &context,
        );
        reply(&serde_json::json!({
            "completion": { "values": values, "total": total, "hasMore": has_more }
        }))
    }
}

/// Resolve a pagination cursor into `(start, end, next_cursor)` over `len` items.
///
/// Cursors are opaque to clients; here they are the decimal offset of the page.
pub fn page(
    cursor: Option<&str>,
    len: usize,
    page_size: usize,
) -> Result<(usize, usize, Option<String>), RpcError> {
    let start = match cursor {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= len => n,
            _ => return Err(RpcError::invalid_params(format!("invalid cursor: {c:?}"))),
        },
    };
    let end = start.saturating_add(page_size).min(len);
    let next = (end < len).then(|| end.to_string());
    Ok((start, end, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        assert_eq!(page(None, 5, 2).unwrap(), (0, 2, Some("2".into())));
        assert_eq!(page(Some("2"), 5, 2).unwrap(), (2, 4, Some("4".into())));
        assert_eq!(page(Some("4"), 5, 2).unwrap(), (4, 5, None));
        assert_eq!(page(None, 4, 2).unwrap(), (0, 2, Some("2".into())));
        assert_eq!(page(Some("2"), 4, 2).unwrap(), (2, 4, None));
        assert_eq!(page(None, 0, 2).unwrap(), (0, 0, None));
        assert!(page(Some("6"), 5, 2).is_err());
        assert!(page(Some("x"), 5, 2).is_err());
    }
}
