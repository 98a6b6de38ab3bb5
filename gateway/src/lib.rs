//! `cairn-gateway`: the S3 front of Cairn, its index and its placement.
//!
//! ```text
//! S3 request ─► server (request id span, guard) ─► s3s (SigV4: auth::KeyStore, auth::AccessPolicy)
//!            ─► s3::Gateway (bucket, object, multipart, copy, delete, list, tagging handlers)
//!                  ├─► index::Index      RocksDB: buckets, objects, uploads, parts, gc queue, membership
//!                  ├─► cluster::Cluster  membership + placement (weighted rendezvous)
//!                  │      └─► membership    the membership written to the volumes (for rebuild)
//!                  └─► replicated        fan-out writes, fail-over reads
//!                         └─► volume_client ─► volumed
//! admin request ─► admin::AdminApi (bearer admin token)
//! offline (cairn-admin) ─► rebuild (volumes ─► a new index)
//!                       ─► migrate ─► engine::copy (one engine's index ─► another's, compared)
//! ```
//!
//! `dev` starts a whole local cluster (volumes in-process) for trying Cairn out.

#![warn(missing_docs)]

pub mod access;
pub mod acl;
pub mod admin;
pub mod auth;
pub mod batch;
pub mod blob_meta;
pub mod checksum;
pub mod cluster;
pub mod commit_log;
pub mod config;
pub mod cors;
pub mod dev;
pub mod engine;
pub mod error;
pub mod gateways;
pub mod guard;
pub mod health;
pub mod in_flight;
pub mod index;
pub mod logging;
pub mod membership;
pub mod migrate;
pub mod owner;
pub mod placement;
pub mod policy;
pub mod rebuild;
pub mod repair;
pub mod replicated;
pub mod request_id;
pub mod s3;
pub mod server;
pub mod time;
pub mod unsupported;
pub mod volume_client;

pub use crate::error::{Error, Result};
