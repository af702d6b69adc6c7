//! Macros that keep generated modules short: open string enums and field defaults.

/// A string enum that keeps values it does not know (in `_Custom`), so a peer on a
/// newer spec version never breaks parsing.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[doc = concat!("`", $wire, "`")] $variant,)*
            /// A value this version of the spec does not list.
            #[doc(hidden)]
            _Custom(::std::string::String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::_Custom(s) => s,
                }
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)*
                    other => Self::_Custom(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::string::String as $crate::__private::serde::Deserialize>::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }

        impl $crate::FromParam for $name {
            fn from_param(s: &str) -> ::std::option::Option<Self> {
                ::std::option::Option::Some(Self::from(s))
            }
        }

        impl $crate::ToParam for $name {
            fn to_param(&self) -> ::std::string::String {
                ::std::string::String::from(self.as_str())
            }
        }
    };
}

/// The two functions a field with a spec `default` needs: the default itself, and a
/// deserializer that treats an explicit `null` as absent (clients send
/// `"logout_devices": null`).
#[macro_export]
macro_rules! default_fns {
    ($default:ident, $or_null:ident, $ty:ty, $value:expr) => {
        fn $default() -> $ty {
            $value
        }

        fn $or_null<'de, D: $crate::__private::serde::Deserializer<'de>>(
            d: D,
        ) -> ::std::result::Result<$ty, D::Error> {
            Ok(
                <::std::option::Option<$ty> as $crate::__private::serde::Deserialize>::deserialize(
                    d,
                )?
                .unwrap_or_else($default),
            )
        }
    };
}
