//! `named_enum!`: the names of a fieldless enum's values (`ALL`, `name`, `Display`, `FromStr`),
//! for the choices the command line takes by name (instruction set, convolution algorithm,
//! optimizer, schedule, preset). An unknown name is an `Error::Invalid` that lists the known ones.

/// `named_enum!(Type, "what it is", [Variant => "name", ...])`.
macro_rules! named_enum {
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// Every value, in the order the names are listed.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            /// The name the command line uses.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::Error;

            /// Case and surrounding spaces do not matter.
            fn from_str(name: &str) -> $crate::error::Result<$ty> {
                $ty::ALL.into_iter().find(|value| value.name().eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
                    let known: Vec<&str> = $ty::ALL.iter().map(|value| value.name()).collect();
                    $crate::error::Error::Invalid(format!(
                        "unknown {} '{name}' (expected one of: {})",
                        $what,
                        known.join(", ")
                    ))
                })
            }
        }
    };
}

pub(crate) use named_enum;
