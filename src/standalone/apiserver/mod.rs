//! An in-memory server that speaks the Kubernetes REST API: the test bed of every
//! controller test and the store of standalone mode.

pub mod discovery;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod status;
pub mod table;
pub mod validation;
