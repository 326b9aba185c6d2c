//! The OpenID Connect / OAuth 2.0 protocol pieces, one concern per file. These are the
//! building blocks of [`Client`](crate::Client); none of them persists anything.

pub mod auth_time;
pub mod authorize;
pub(crate) mod callback;
pub mod discovery;
pub mod end_session;
pub mod id_token;
pub(crate) mod jwks;
pub mod logout_token;
pub mod registration;
pub(crate) mod response;
pub mod revocation;
pub mod token;
pub(crate) mod userinfo;

pub use auth_time::AuthTimeProblem;
pub use authorize::{AuthorizationStart, LoginOptions};
pub use discovery::{Discovery, MetadataSource, ProviderMetadata};
pub use end_session::LogoutOptions;
pub use registration::{ClientRegistration, RegistrationOptions};
pub use revocation::RevocationGap;
