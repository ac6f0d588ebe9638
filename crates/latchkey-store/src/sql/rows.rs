//! The row readers of `rows.rs` over [`Row`], for the units of work of this module.

#![allow(dead_code)] // every reader is expanded; the units not yet moved here read elsewhere

use super::{Row, get};

row_readers!(@readers dyn Row);
