//! Declarative macros that turn one schema line per constructor into a Rust type with its TL
//! codec, so a message is declared once and its id is checked against the schema text.

/// Declares a TL constructor as a struct with bare and boxed codecs.
///
/// Fields are written in wire order. A field named `flags` of type `u32` is the `#` field;
/// `name: T => N` declares `name:flags.N?T` as `Option<T>`. On encode the flags value is the
/// stored `flags` with the bits of present optional fields added, so decoded values
/// re-encode byte for byte and hand-built ones need not set bits by hand.
///
/// On decode a flags word with a bit that no declared field uses is
/// [`Error::UnknownFlagBits`](crate::Error::UnknownFlagBits): a peer that sets a bit we do not
/// know may have put a field behind it, and reading on would misread everything after it.
///
/// For tests (and with the `sample` feature) it also implements `sample::Sample`: random valid
/// values whose optional fields are present exactly when their flag bit is set.
///
/// `extension_flags = MASK;` before the fields declares flag bits that carry a value without a
/// field (a COCOON extension of a reference message): they are kept and accepted on decode.
macro_rules! tl_struct {
    (
        $(#[$meta:meta])*
        $name:ident = $id:literal, $schema:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty $( => $bit:literal )? ),* $(,)?
        }
    ) => {
        tl_struct! {
            $(#[$meta])*
            $name = $id, $schema {
                extension_flags = 0;
                $( $(#[$fmeta])* $field : $ty $( => $bit )? ),*
            }
        }
    };
    (
        $(#[$meta:meta])*
        $name:ident = $id:literal, $schema:literal {
            extension_flags = $extension:expr;
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty $( => $bit:literal )? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[doc = concat!("\n\nTL: `", $schema, "` (id `", stringify!($id), "`).")]
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: tl_field_ty!($ty $(, $bit)?), )*
        }

        impl $name {
            /// Every flag bit a declared optional field or extension uses; a decoded flags word may
            /// hold no other.
            #[allow(dead_code)]
            pub const KNOWN_FLAGS: u32 = $extension $( | tl_flag_mask!($field $(, $bit)?) )*;
        }

        impl $crate::tl::TlWrite for $name {
            #[allow(unused_variables, unused_mut)]
            fn tl_write(&self, out: &mut Vec<u8>) {
                let mut flags_value: u32 = 0;
                $( tl_flag_bit!(self, flags_value, $field $(, $bit)?); )*
                $( tl_field_write!(self, out, flags_value, $ty, $field $(, $bit)?); )*
            }
        }

        impl $crate::tl::TlRead for $name {
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn tl_read(r: &mut $crate::tl::TlReader) -> Result<Self, $crate::Error> {
                let mut flags_value: u32 = 0;
                $( let $field = tl_field_read!(r, flags_value, $ty, $field $(, $bit)?); )*
                Ok(Self { $( $field, )* })
            }
        }

        impl $crate::tl::TlConstructor for $name {
            const ID: u32 = $id;
            const SCHEMA: &'static str = $schema;
        }

        #[cfg(any(test, feature = "sample"))]
        impl $crate::sample::Sample for $name {
            #[allow(unused_mut)]
            fn sample() -> ::proptest::strategy::BoxedStrategy<Self> {
                use ::proptest::strategy::Strategy as _;
                // Nested pairs rather than one flat tuple: no limit on the number of fields.
                tl_sample_strategies!($( $ty ),*)
                    .prop_map(|tl_sample_pattern!($( $field ),*)| {
                        let mut value = Self { $( $field: tl_sample_wrap!($field $(, $bit)?), )* };
                        // An optional field is present exactly when its flag bit is set, and
                        // only known bits are set (others are a decode error).
                        $( tl_sample_flag_fix!(value, $field $(, $bit)?); )*
                        value
                    })
                    .boxed()
            }
        }
    };
}

#[cfg(any(test, feature = "sample"))]
macro_rules! tl_sample_strategies {
    () => {
        ::proptest::strategy::Just(())
    };
    ($ty:ty $(, $rest:ty)*) => {
        (
            <$ty as $crate::sample::Sample>::sample(),
            tl_sample_strategies!($( $rest ),*),
        )
    };
}

#[cfg(any(test, feature = "sample"))]
macro_rules! tl_sample_pattern {
    () => {
        ()
    };
    ($field:ident $(, $rest:ident)*) => {
        ($field, tl_sample_pattern!($( $rest ),*))
    };
}

#[cfg(any(test, feature = "sample"))]
macro_rules! tl_sample_wrap {
    ($field:ident) => {
        $field
    };
    ($field:ident, $bit:literal) => {
        Some($field)
    };
}

#[cfg(any(test, feature = "sample"))]
macro_rules! tl_sample_flag_fix {
    ($v:ident, flags) => {
        $v.flags &= Self::KNOWN_FLAGS;
    };
    ($v:ident, $field:ident) => {};
    ($v:ident, $field:ident, $bit:literal) => {
        if $v.flags & (1u32 << $bit) == 0 {
            $v.$field = None;
        }
    };
}

macro_rules! tl_flag_mask {
    ($field:ident) => {
        0u32
    };
    ($field:ident, $bit:literal) => {
        1u32 << $bit
    };
}

macro_rules! tl_field_ty {
    ($ty:ty) => { $ty };
    ($ty:ty, $bit:literal) => { Option<$ty> };
}

macro_rules! tl_flag_bit {
    ($s:ident, $f:ident, flags) => {
        $f |= $s.flags;
    };
    ($s:ident, $f:ident, $field:ident) => {};
    ($s:ident, $f:ident, $field:ident, $bit:literal) => {
        if $s.$field.is_some() {
            $f |= 1u32 << $bit;
        }
    };
}

macro_rules! tl_field_write {
    ($s:ident, $out:ident, $f:ident, $ty:ty, flags) => {
        $crate::tl::TlWrite::tl_write(&$f, $out);
    };
    ($s:ident, $out:ident, $f:ident, $ty:ty, $field:ident) => {
        $crate::tl::TlWrite::tl_write(&$s.$field, $out);
    };
    ($s:ident, $out:ident, $f:ident, $ty:ty, $field:ident, $bit:literal) => {
        if $f & (1u32 << $bit) != 0 {
            match &$s.$field {
                Some(v) => $crate::tl::TlWrite::tl_write(v, $out),
                None => $crate::tl::TlWrite::tl_write(&<$ty as Default>::default(), $out),
            }
        }
    };
}

macro_rules! tl_field_read {
    ($r:ident, $f:ident, $ty:ty, flags) => {{
        let v = $r.read_u32()?;
        if v & !Self::KNOWN_FLAGS != 0 {
            return Err($crate::Error::UnknownFlagBits {
                id: <Self as $crate::tl::TlConstructor>::ID,
                unknown: v & !Self::KNOWN_FLAGS,
            });
        }
        $f = v;
        v
    }};
    ($r:ident, $f:ident, $ty:ty, $field:ident) => {
        <$ty as $crate::tl::TlRead>::tl_read($r)?
    };
    ($r:ident, $f:ident, $ty:ty, $field:ident, $bit:literal) => {
        if $f & (1u32 << $bit) != 0 {
            Some(<$ty as $crate::tl::TlRead>::tl_read($r)?)
        } else {
            None
        }
    };
}

/// Declares a TL boxed type: an enum over constructors, always written with its id.
///
/// For tests (and with the `sample` feature) it also implements `sample::Sample`, with one
/// strategy per constructor, and `sample::Constructors`, which hands the held constructor to a
/// generic visitor (the round-trip tests check bare and boxed encodings through it).
macro_rules! tl_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $tl_name:literal {
            $( $(#[$vmeta:meta])* $variant:ident($inner:ty) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant($inner), )*
        }

        impl $name {
            /// Constructor id of the value held.
            pub fn constructor_id(&self) -> u32 {
                match self {
                    $( Self::$variant(_) => <$inner as $crate::tl::TlConstructor>::ID, )*
                }
            }

            /// Schema name of the constructor held.
            pub fn constructor_name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => {
                        let s = <$inner as $crate::tl::TlConstructor>::SCHEMA;
                        match s.find(' ') { Some(i) => &s[..i], None => s }
                    } )*
                }
            }

            /// Every constructor id this type accepts.
            pub const IDS: &'static [u32] = &[ $( <$inner as $crate::tl::TlConstructor>::ID, )* ];

            /// The schema line of every constructor this type accepts, in the order of [`Self::IDS`].
            pub const SCHEMAS: &'static [&'static str] =
                &[ $( <$inner as $crate::tl::TlConstructor>::SCHEMA, )* ];
        }

        #[cfg(any(test, feature = "sample"))]
        impl $crate::sample::Sample for $name {
            fn sample() -> ::proptest::strategy::BoxedStrategy<Self> {
                use ::proptest::strategy::Strategy as _;
                ::proptest::strategy::Union::new(
                    <Self as $crate::sample::Sample>::sample_variants()
                        .into_iter()
                        .map(|(_, s)| s),
                )
                .boxed()
            }

            fn sample_variants() -> Vec<(&'static str, ::proptest::strategy::BoxedStrategy<Self>)> {
                use ::proptest::strategy::Strategy as _;
                vec![ $(
                    (
                        $crate::sample::schema_name(<$inner as $crate::tl::TlConstructor>::SCHEMA),
                        <$inner as $crate::sample::Sample>::sample().prop_map(Self::$variant).boxed(),
                    ),
                )* ]
            }
        }

        #[cfg(any(test, feature = "sample"))]
        impl $crate::sample::Constructors for $name {
            fn visit<V: $crate::sample::ConstructorVisitor>(&self, visitor: &mut V) -> V::Output {
                match self {
                    $( Self::$variant(v) => visitor.visit(v), )*
                }
            }
        }

        impl $crate::tl::TlWrite for $name {
            fn tl_write(&self, out: &mut Vec<u8>) {
                match self {
                    $( Self::$variant(v) => {
                        out.extend_from_slice(&<$inner as $crate::tl::TlConstructor>::ID.to_le_bytes());
                        $crate::tl::TlWrite::tl_write(v, out);
                    } )*
                }
            }
        }

        impl $crate::tl::TlRead for $name {
            fn tl_read(r: &mut $crate::tl::TlReader) -> Result<Self, $crate::Error> {
                let id = r.read_u32()?;
                $(
                    if id == <$inner as $crate::tl::TlConstructor>::ID {
                        return Ok(Self::$variant(<$inner as $crate::tl::TlRead>::tl_read(r)?));
                    }
                )*
                Err($crate::Error::UnknownConstructor { id, context: $tl_name })
            }
        }

        $(
            impl From<$inner> for $name {
                fn from(v: $inner) -> Self {
                    Self::$variant(v)
                }
            }
        )*
    };
}
