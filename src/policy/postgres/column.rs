//! Typed reads of text columns: the vocabularies (permissions, object
//! types) and token digests are stored as text and parsed on the way out,
//! so a value the model does not know is a read error, never a guess.

use std::error::Error;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use loggate_model::Timestamp;
use tokio_postgres::types::{FromSql, Type};

/// A text column parsed into `T`.
pub struct Parsed<T>(pub T);

impl<'a, T: FromStr> FromSql<'a> for Parsed<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let s = <&str as FromSql>::from_sql(ty, raw)?;
        s.parse().map(Parsed).map_err(|_| format!("unexpected value in a {} column", std::any::type_name::<T>()).into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A `timestamptz` as the model's instant.
pub fn instant(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(|t| Timestamp::from_unix_ms(t.timestamp_millis()))
}

/// The model's instant as a `timestamptz` parameter.
pub fn timestamptz(t: Option<Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp_millis(t.unix_ms()))
}
