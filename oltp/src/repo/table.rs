//! The generic half of every repository: a tenant-owned table described once by a [`Table`], and the
//! statements every resource shares — list (equality and range filters, owner scope, sort, keyset
//! cursor), get, lock, delete, and writes of a typed body through `jsonb_populate_record`, so Postgres
//! converts each field to its column type exactly as it would a literal of that type.
//!
//! SQL text here is assembled only from the `&'static` names of a [`Table`] and from the serialised
//! field names of the crate's own request types (checked to be plain identifiers and columns of the
//! table); every client-supplied value is a bind parameter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::{Deserialize, de::DeserializeOwned};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::found;
use crate::model::{TenantId, UserId};
use crate::{Error, Result};

/// A column with the SQL type its text form is cast to when bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: &'static str,
}

/// Shorthand for a [`Column`] in `const` table descriptions.
pub const fn col(name: &'static str, ty: &'static str) -> Column {
    Column { name, ty }
}

/// How a list filter compares its column with the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    /// Case-insensitive equality (`lower(column) = lower(value)`).
    IEq,
    /// `column < value`
    Before,
    /// `column >= value`
    From,
}

/// One query-string filter of a list: `param` compares `column` by `op`.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub param: &'static str,
    pub column: Column,
    pub op: Op,
}

/// An equality filter whose parameter is the column name.
pub const fn eq(name: &'static str, ty: &'static str) -> Filter {
    Filter { param: name, column: col(name, ty), op: Op::Eq }
}

/// A description of one tenant-owned table, enough for the generic statements.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Singular, for messages ("no such product").
    pub entity: &'static str,
    /// Every column of the record type, in its field order.
    pub columns: &'static [&'static str],
    /// The column naming the record's owner, if records have one (scopes `own`/`team` filter on it).
    pub owner: Option<&'static str>,
    /// Filters lists accept.
    pub filters: &'static [Filter],
    /// Columns lists may be sorted by besides `id`. Each must be NOT NULL so the keyset order is total.
    pub sorts: &'static [Column],
}

const ID: Column = col("id", "uuid");

impl Table {
    fn select_list(&self) -> String {
        self.columns.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ")
    }

    /// Validates a `sort` parameter: a sortable column, `-` in front for descending; default `id`.
    pub fn sort(&self, spec: Option<&str>) -> Result<Sort> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Sort { column: ID, descending: false });
        };
        let (name, descending) = match spec.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (spec.strip_prefix('+').unwrap_or(spec), false),
        };
        let column = std::iter::once(&ID).chain(self.sorts).find(|c| c.name == name).copied().ok_or_else(|| {
            let allowed: Vec<_> = std::iter::once(&ID).chain(self.sorts).map(|c| c.name).collect();
            Error::invalid(format!("cannot sort {} by {name:?}; sortable: {}", self.name, allowed.join(", ")))
        })?;
        Ok(Sort { column, descending })
    }

    /// Validates a sparse-fieldset parameter (`fields=name,amount`): known columns, `id` always kept.
    pub fn fields(&self, spec: Option<&str>) -> Result<Option<Vec<&'static str>>> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
        let mut out = vec!["id"];
        for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let c = self.columns.iter().find(|c| **c == name).ok_or_else(|| {
                Error::invalid(format!("{} has no field {name:?}; fields: {}", self.entity, self.columns.join(", ")))
            })?;
            if !out.contains(c) {
                out.push(c);
            }
        }
        Ok(Some(out))
    }

    /// The filters a serialised query object asks for (its non-null members named like a filter).
    pub fn filters_from<Q: Serialize>(&self, query: &Q) -> Vec<(Filter, String)> {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(query) else { return Vec::new() };
        self.filters
            .iter()
            .filter_map(|f| match map.get(f.param)? {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some((*f, s.clone())),
                other => Some((*f, other.to_string())),
            })
            .collect()
    }
}

/// A validated sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

impl Sort {
    /// The `sort` parameter this order is written as.
    pub fn spec(&self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.column.name)
    }
}

/// Where a page starts: just after the row with this sort key and id. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort it was issued for; a cursor is only valid with the same sort.
    #[serde(rename = "s")]
    pub sort: String,
    /// Text form of the last row's sort key (absent when sorting by id).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl Cursor {
    /// A cursor continues only the sort it was issued for.
    pub fn check(&self, sort: &Sort) -> Result<()> {
        if self.sort != sort.spec() {
            return Err(Error::invalid(format!(
                "this cursor was issued for sort={:?}; repeat the sort it came with",
                self.sort
            )));
        }
        Ok(())
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor; anything that is not one we issued is a client error.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || Error::invalid("`after` is not a cursor this API issued; pass `next_cursor` unchanged");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// Everything a list asks for.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub filters: Vec<(Filter, String)>,
    /// Restricts to records owned by one of these users (the caller's `own`/`team` scope); records
    /// without an owner are then excluded.
    pub owners: Option<Vec<UserId>>,
    pub sort: Sort,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// One page and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

const KEY: &str = "orbas_sort_key";

/// Lists one page of `table`.
pub async fn list<T>(conn: &mut PgConnection, table: &Table, req: &ListRequest) -> Result<Listed<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let limit = req.limit.clamp(1, super::PageRequest::MAX_LIMIT);
    let sort = req.sort;
    let by_id = sort.column == ID;
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(table.select_list());
    if !by_id {
        q.push(format_args!(", t.{}::text AS {KEY}", sort.column.name));
    }
    q.push(format_args!(" FROM {} t WHERE true", table.name));
    for (f, value) in &req.filters {
        let (c, ty) = (f.column.name, f.column.ty);
        match f.op {
            Op::Eq => q.push(format_args!(" AND t.{c} = ")).push_bind(value.clone()).push(format_args!("::{ty}")),
            Op::IEq => q.push(format_args!(" AND lower(t.{c}) = lower(")).push_bind(value.clone()).push(")"),
            Op::Before => q.push(format_args!(" AND t.{c} < ")).push_bind(value.clone()).push(format_args!("::{ty}")),
            Op::From => q.push(format_args!(" AND t.{c} >= ")).push_bind(value.clone()).push(format_args!("::{ty}")),
        };
    }
    if let Some(owners) = &req.owners {
        let ids: Vec<Uuid> = owners.iter().map(|u| u.0).collect();
        match table.owner {
            Some(owner) => q.push(format_args!(" AND t.{owner} = ANY(")).push_bind(ids).push(")"),
            // Nobody owns these records: only an `all` scope reaches them.
            None => q.push(" AND false"),
        };
    }
    let cmp = if sort.descending { "<" } else { ">" };
    if let Some(after) = &req.after {
        after.check(&sort)?;
        if by_id {
            q.push(format_args!(" AND t.id {cmp} ")).push_bind(after.id);
        } else {
            let key = after.key.clone().ok_or_else(|| Error::invalid("cursor lacks its sort key"))?;
            let (c, ty) = (sort.column.name, sort.column.ty);
            q.push(format_args!(" AND (t.{c}, t.id) {cmp} ("))
                .push_bind(key)
                .push(format_args!("::{ty}, "))
                .push_bind(after.id)
                .push(")");
        }
    }
    let dir = if sort.descending { "DESC" } else { "ASC" };
    if by_id {
        q.push(format_args!(" ORDER BY t.id {dir}"));
    } else {
        q.push(format_args!(" ORDER BY t.{} {dir}, t.id {dir}", sort.column.name));
    }
    q.push(" LIMIT ").push_bind(i64::from(limit) + 1);
    let mut rows = q.build().fetch_all(&mut *conn).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some(Cursor {
            sort: sort.spec(),
            key: if by_id { None } else { Some(last.try_get::<String, _>(KEY)?) },
            id: last.try_get::<Uuid, _>("id")?,
        }),
        _ => None,
    };
    let items = rows.iter().map(T::from_row).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Listed { items, next })
}

/// One record by id (`lock`: `FOR UPDATE`, for read-modify-write).
pub async fn get<T>(conn: &mut PgConnection, table: &Table, id: Uuid, lock: bool) -> Result<T>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!(
        "SELECT {} FROM {} t WHERE t.id = $1{}",
        table.select_list(),
        table.name,
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await?;
    found(row, table.entity)
}

/// Deletes a record (a conflict while other records still reference it).
pub async fn delete(conn: &mut PgConnection, table: &Table, id: Uuid) -> Result<()> {
    let sql = format!("DELETE FROM {} WHERE id = $1", table.name);
    let done = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(conn).await?;
    found((done.rows_affected() == 1).then_some(()), table.entity)
}

/// The non-null members of a serialised request body, checked to be columns of `table`.
fn members<B: Serialize>(table: &Table, body: &B) -> Result<serde_json::Map<String, serde_json::Value>> {
    let serde_json::Value::Object(mut map) = serde_json::to_value(body).map_err(|e| Error::invalid(e.to_string()))?
    else {
        return Err(Error::invalid(format!("a {} body must be an object", table.entity)));
    };
    map.retain(|_, v| !v.is_null());
    if let Some(bad) = map.keys().find(|k| !table.columns.contains(&k.as_str())) {
        // The request types are ours; a member that is not a column is a bug, not client input.
        return Err(Error::invalid(format!("{} has no column {bad:?}", table.name)));
    }
    Ok(map)
}

/// Inserts a record from a typed body: the body's non-null members are the columns written (the
/// others take their defaults), converted by Postgres to the column types; `id` and `tenant_id` are
/// set here and cannot come from the body.
pub async fn insert<B, T>(conn: &mut PgConnection, table: &Table, tenant: TenantId, id: Uuid, body: &B) -> Result<T>
where
    B: Serialize,
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut map = members(table, body)?;
    map.insert("tenant_id".into(), serde_json::json!(tenant.0));
    map.insert("id".into(), serde_json::json!(id));
    let cols = map.keys().cloned().collect::<Vec<_>>().join(", ");
    let sql = format!(
        "INSERT INTO {name} AS t ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{name}, $1) RETURNING {sel}",
        name = table.name,
        sel = table.select_list()
    );
    Ok(sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)).bind(serde_json::Value::Object(map)).fetch_one(conn).await?)
}

/// Updates the columns a typed patch sets (its non-null members); an empty patch changes nothing.
pub async fn update<B, T>(conn: &mut PgConnection, table: &Table, id: Uuid, patch: &B) -> Result<T>
where
    B: Serialize,
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    update_nulling(conn, table, id, patch, &[]).await
}

/// [`update`], also setting the columns `nulls` to NULL (for server-maintained fields a change clears).
pub async fn update_nulling<B, T>(
    conn: &mut PgConnection,
    table: &Table,
    id: Uuid,
    patch: &B,
    nulls: &[&'static str],
) -> Result<T>
where
    B: Serialize,
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let map = members(table, patch)?;
    let nulls: Vec<_> = nulls.iter().filter(|c| table.columns.contains(c) && !map.contains_key(**c)).collect();
    if map.is_empty() && nulls.is_empty() {
        return get(conn, table, id, false).await;
    }
    let targets: Vec<&str> = map.keys().map(String::as_str).chain(nulls.iter().map(|c| **c)).collect();
    let values: Vec<&str> = map.keys().map(String::as_str).chain(nulls.iter().map(|_| "NULL")).collect();
    let sql = format!(
        "UPDATE {name} AS t SET ({targets}) = (SELECT {values} FROM jsonb_populate_record(NULL::{name}, $2)) \
         WHERE t.id = $1 RETURNING {sel}",
        name = table.name,
        targets = targets.join(", "),
        values = values.join(", "),
        sel = table.select_list()
    );
    let row = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(serde_json::Value::Object(map))
        .fetch_optional(conn)
        .await?;
    found(row, table.entity)
}

/// Deserialises a value the way a request body would be (used where a body is built from parts).
pub fn from_json<T: DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Table = Table {
        name: "things",
        entity: "thing",
        columns: &["id", "name", "amount"],
        owner: None,
        filters: &[],
        sorts: &[col("amount", "numeric"), col("name", "text")],
    };

    #[test]
    fn sort_specs() {
        assert_eq!(T.sort(None).map(|s| s.spec()).ok(), Some("id".into()));
        assert_eq!(T.sort(Some("-amount")).map(|s| s.spec()).ok(), Some("-amount".into()));
        assert_eq!(T.sort(Some("+name")).map(|s| s.spec()).ok(), Some("name".into()));
        let err = T.sort(Some("tenant_id")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sortable: id, amount, name"), "{err}");
    }

    #[test]
    fn field_sets_keep_id_and_refuse_unknown_names() {
        assert_eq!(T.fields(Some("name, amount,name")).ok().flatten(), Some(vec!["id", "name", "amount"]));
        assert_eq!(T.fields(Some("")).ok().flatten(), None);
        assert!(T.fields(Some("name,password")).is_err());
    }

    #[test]
    fn garbage_cursors_are_client_errors() {
        for bad in ["", "!!", "e30", "bm90IGpzb24"] {
            let err = Cursor::decode(bad).err().map(|e| e.kind());
            assert_eq!(err, Some(crate::ErrorKind::Invalid), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn cursors_round_trip(sort in "-?[a-z_]{1,20}", key in proptest::option::of(".{0,40}"), id in any::<u128>()) {
            let c = Cursor { sort, key, id: Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        }
    }
}
