//! What a call is, in types that cannot hold an invalid one.

pub mod call;
pub mod custom_fields;
pub mod media_status;
pub mod text;
pub mod time;
pub mod wire_time;

pub use call::{Call, CallKey, Client, Direction, MediaUrl, Phrase, Role, Seconds};
pub use custom_fields::{CustomFields, CustomValue, FieldType};
pub use media_status::MediaStatus;
pub use text::ExternalId;
