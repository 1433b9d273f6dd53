//! sluice-net: the network plumbing the agency gateway and the registry share.
//!
//! One accept loop ([`server::serve`]), one rustls server-config builder ([`tls`]), one
//! peer-identity type read from the verified client certificate ([`identity::PeerIdentity`]),
//! response bodies ([`body`]), problem+json rendering ([`problem`]) and the one HTTPS client
//! that talks to the registry ([`registry_client::RegistryClient`]), and the readiness a service
//! manager is told ([`service`]).

pub mod body;
pub mod identity;
pub mod problem;
pub mod registry_client;
pub mod server;
pub mod service;
pub mod tls;
