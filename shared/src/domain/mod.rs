//! What a call is, in types that cannot hold an invalid one.

pub mod call;
pub mod communication;
pub mod custom_fields;
pub mod media_status;
pub mod text;
pub mod time;
pub mod wire_time;

pub use call::{Call, CallKey, Client, Direction, MediaUrl, Phrase, Role, Seconds};
pub use communication::{Author, TextCommunication, TextPart};
pub use custom_fields::{CustomFields, CustomValue, FieldType};
pub use media_status::MediaStatus;
pub use text::ExternalId;

/// Postgres stores no NUL character in `text` or `jsonb`, so no value of a call may hold one.
pub const NUL_REFUSAL: &str =
    "must not contain the NUL character (\\u0000); remove it or send the value without it";
