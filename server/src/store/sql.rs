//! What write jobs are written in, the same for both databases: a statement
//! with its arguments, a row of values, and a connection that runs them —
//! rusqlite on SQLite's writer thread (no hand-off per statement, see
//! `writer`), sqlx on PostgreSQL.
//!
//! Only the types the schema uses exist: integers and text, either nullable.
//! A null keeps its type, since PostgreSQL types its parameters.

use std::future::{ready, Future};
use std::pin::Pin;

use sqlx::{AnyConnection, Row as _};

use super::{Result, StoreError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}

/// A statement and its arguments (`$1`, `$2`, … in order of `bind`).
#[derive(Debug)]
pub struct Statement {
    sql: &'static str,
    args: Vec<Value>,
}

pub fn query(sql: &'static str) -> Statement {
    Statement {
        sql,
        args: Vec::new(),
    }
}

impl Statement {
    pub fn bind(mut self, v: impl Into<Value>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Runs it; the number of rows it changed.
    pub async fn execute(self, c: &mut dyn Conn) -> Result<u64> {
        c.execute(self).await
    }

    /// Runs it; its first row, as a tuple of column types.
    pub async fn fetch_optional<R: FromRow>(self, c: &mut dyn Conn) -> Result<Option<R>> {
        c.fetch_optional(self)
            .await?
            .map(|row| R::from_row(&row))
            .transpose()
    }
}

/// A column type a row can be read as.
pub trait Column: Sized {
    fn get(row: &Row, i: usize) -> Result<Self>;
}
impl Column for i64 {
    fn get(row: &Row, i: usize) -> Result<Self> {
        row.i64(i)
    }
}
impl Column for Option<i64> {
    fn get(row: &Row, i: usize) -> Result<Self> {
        row.opt_i64(i)
    }
}
impl Column for String {
    fn get(row: &Row, i: usize) -> Result<Self> {
        row.string(i)
    }
}
impl Column for Option<String> {
    fn get(row: &Row, i: usize) -> Result<Self> {
        row.opt_string(i)
    }
}

/// A tuple of columns a row can be read as.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Column),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                Ok(($($t::get(row, $i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);

/// One row a query returned.
#[derive(Debug)]
pub struct Row(Vec<Value>);

impl Row {
    fn column(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Row(format!("no column {i}")))
    }

    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        match self.column(i)? {
            Value::Int(v) => Ok(*v),
            Value::Text(None) => Ok(None),
            Value::Text(Some(_)) => Err(StoreError::Row(format!("column {i} is text"))),
        }
    }

    pub fn i64(&self, i: usize) -> Result<i64> {
        self.opt_i64(i)?
            .ok_or_else(|| StoreError::Row(format!("column {i} is null")))
    }

    pub fn opt_string(&self, i: usize) -> Result<Option<String>> {
        match self.column(i)? {
            Value::Text(v) => Ok(v.clone()),
            Value::Int(None) => Ok(None),
            Value::Int(Some(_)) => Err(StoreError::Row(format!("column {i} is an integer"))),
        }
    }

    pub fn string(&self, i: usize) -> Result<String> {
        self.opt_string(i)?
            .ok_or_else(|| StoreError::Row(format!("column {i} is null")))
    }
}

/// A connection inside a write transaction.
pub trait Conn: Send {
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, s: Statement) -> BoxFuture<'_, Result<u64>>;
    /// Runs a query; its first row.
    fn fetch_optional(&mut self, s: Statement) -> BoxFuture<'_, Result<Option<Row>>>;
}

/// SQLite: synchronous, on the writer's thread, with cached prepared statements.
/// The futures are ready when returned.
pub struct Sqlite<'a>(pub &'a mut rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Value::Int(v) => v.to_sql(),
            Value::Text(v) => v.to_sql(),
        }
    }
}

pub fn sqlite_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error() {
        Some(f)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict
        }
        _ => StoreError::Sqlite(e.to_string()),
    }
}

/// The statement with SQLite's numbered parameters: to SQLite itself `$4` is
/// a *named* parameter, numbered by first appearance, so `… $5 … $4` would
/// swap them (sqlx's SQLite driver rewrites them the same way). No statement
/// here has a `$` in a string literal.
fn numbered(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains('$') {
        sql.replace('$', "?").into()
    } else {
        sql.into()
    }
}

impl Sqlite<'_> {
    fn run_execute(&mut self, s: &Statement) -> rusqlite::Result<u64> {
        let mut stmt = self.0.prepare_cached(&numbered(s.sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(&s.args))? as u64)
    }

    fn run_query(&mut self, s: &Statement) -> rusqlite::Result<Option<Row>> {
        let mut stmt = self.0.prepare_cached(&numbered(s.sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(&s.args))?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let values = (0..columns)
            .map(|i| {
                use rusqlite::types::ValueRef;
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => Value::Int(None),
                    ValueRef::Integer(n) => Value::Int(Some(n)),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(Some(String::from_utf8_lossy(t).into_owned()))
                    }
                    ValueRef::Real(f) => Value::Int(Some(f as i64)),
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(Row(values)))
    }
}

impl Conn for Sqlite<'_> {
    fn execute(&mut self, s: Statement) -> BoxFuture<'_, Result<u64>> {
        Box::pin(ready(self.run_execute(&s).map_err(sqlite_error)))
    }

    fn fetch_optional(&mut self, s: Statement) -> BoxFuture<'_, Result<Option<Row>>> {
        Box::pin(ready(self.run_query(&s).map_err(sqlite_error)))
    }
}

/// Any database through sqlx (PostgreSQL's write jobs).
pub struct Sqlx<'a>(pub &'a mut AnyConnection);

fn sqlx_query(s: Statement) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(s.sql);
    for v in s.args {
        q = match v {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
        };
    }
    q
}

impl Conn for Sqlx<'_> {
    fn execute(&mut self, s: Statement) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move { Ok(sqlx_query(s).execute(&mut *self.0).await?.rows_affected()) })
    }

    fn fetch_optional(&mut self, s: Statement) -> BoxFuture<'_, Result<Option<Row>>> {
        Box::pin(async move {
            let Some(row) = sqlx_query(s).fetch_optional(&mut *self.0).await? else {
                return Ok(None);
            };
            let values = (0..row.len())
                .map(|i| match row.try_get::<Option<i64>, _>(i) {
                    Ok(v) => Ok(Value::Int(v)),
                    Err(_) => row.try_get::<Option<String>, _>(i).map(Value::Text),
                })
                .collect::<std::result::Result<_, sqlx::Error>>()?;
            Ok(Some(Row(values)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready<T>(f: BoxFuture<'_, T>) -> T {
        crate::store::writer::ready(f).expect("SQLite statements are ready at once")
    }

    #[test]
    fn numbered_parameters_keep_their_numbers_in_any_order_on_sqlite() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c TEXT)")
            .unwrap();
        let mut c = Sqlite(&mut conn);
        let insert = query("INSERT INTO t (c, b, a) VALUES ($3, $2, $1)")
            .bind(7)
            .bind("two")
            .bind(None::<String>);
        assert_eq!(ready(c.execute(insert)).unwrap(), 1);
        let row = ready(
            c.fetch_optional(
                query("SELECT a, b, c FROM t WHERE b = $2 AND a = $1")
                    .bind(7)
                    .bind("two"),
            ),
        )
        .unwrap()
        .expect("the row");
        assert_eq!(row.i64(0).unwrap(), 7);
        assert_eq!(row.string(1).unwrap(), "two");
        assert_eq!(row.opt_string(2).unwrap(), None);
        assert!(row.string(0).is_err(), "an integer is not text");
    }

    #[test]
    fn a_taken_key_is_a_conflict() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        let mut c = Sqlite(&mut conn);
        ready(c.execute(query("INSERT INTO t (k) VALUES ($1)").bind("x"))).unwrap();
        let again = ready(c.execute(query("INSERT INTO t (k) VALUES ($1)").bind("x")));
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    }
}
