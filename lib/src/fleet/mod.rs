//! The fleet transport: records published to and read from NATS JetStream, so the records
//! of many hosts meet on hubs (see docs/fleet.md).
//!
//! - [`url`]: the `nats://` addresses (servers, subject, durable name, replicas), shown
//!   redacted everywhere.
//! - [`conn`]: the process's NATS runtime, connecting with the credentials.
//! - [`publish`]: `--publish`, with the local outbox for what could not be sent.
//! - [`consume`]: a durable consumer read as NDJSON lines, acknowledged after commit.
//! - [`kv`]: what the hubs share in key-value buckets: notify's memory, the lease, the
//!   claims on alerts sent.
//!
//! Below the formats: [`crate::ndjson`] opens a `nats://` source through it, and
//! [`crate::entry`] tees a tool's output into a [`publish::Publisher`].

pub mod conn;
pub mod consume;
pub mod kv;
pub mod publish;
pub mod url;

pub use url::NatsUrl;
