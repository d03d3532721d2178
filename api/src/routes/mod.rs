//! HTTP routes under `/v1`, one module per area.

pub mod accounts;
pub mod auth;
pub mod contacts;
pub mod leads;
pub mod opportunities;
pub mod recommendations;
pub mod tasks;
