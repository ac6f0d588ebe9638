//! Latchkey's domain: the rules that do not depend on where data lives or how it travels.
//!
//! Pure: this crate never reads the clock, opens a file or a socket, or spawns a task. Time is
//! always an argument. The one outside resource it touches is the operating system's CSPRNG
//! (`entropy`), because secrets must be born in the types that guard them.

pub mod duration;
pub mod entropy;
pub mod jose;
pub mod login;
pub mod model;
pub mod password;
pub mod policy;
pub mod sealing;
pub mod secret;
pub mod token;
pub mod totp;

pub use duration::HumanDuration;
pub use secret::{SecretBytes, SecretString};
