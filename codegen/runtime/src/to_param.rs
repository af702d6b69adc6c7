//! The inverse of [`FromParam`](crate::FromParam): how a client writes a path,
//! query or header parameter value as text.

use crate::identifiers::{EventId, RoomAlias, RoomId, ServerName, UserId};

/// A parameter value in its text form, as [`FromParam`](crate::FromParam)
/// parses it back (`true`/`false`, decimal numbers, identifiers and string
/// enums as their wire strings). Escaping is the caller's business.
pub trait ToParam {
    fn to_param(&self) -> String;
}

impl ToParam for String {
    fn to_param(&self) -> String {
        self.clone()
    }
}

impl ToParam for str {
    fn to_param(&self) -> String {
        self.to_owned()
    }
}

impl ToParam for i64 {
    fn to_param(&self) -> String {
        self.to_string()
    }
}

impl ToParam for f64 {
    fn to_param(&self) -> String {
        self.to_string()
    }
}

impl ToParam for bool {
    fn to_param(&self) -> String {
        if *self { "true" } else { "false" }.to_owned()
    }
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> String {
        (**self).to_param()
    }
}

macro_rules! identifier_params {
    ($($name:ident),*) => {$(
        impl ToParam for $name {
            fn to_param(&self) -> String {
                self.as_str().to_owned()
            }
        }
    )*};
}

identifier_params!(UserId, ServerName, RoomId, RoomAlias, EventId);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FromParam;

    #[test]
    fn params_read_back_as_written() {
        assert_eq!(i64::from_param(&(-42i64).to_param()), Some(-42));
        assert_eq!(f64::from_param(&1.5f64.to_param()), Some(1.5));
        assert_eq!(bool::from_param(&true.to_param()), Some(true));
        assert_eq!(bool::from_param(&false.to_param()), Some(false));
        let user = UserId::parse("@a:b.c").unwrap();
        assert_eq!(UserId::from_param(&user.to_param()), Some(user));
    }
}
