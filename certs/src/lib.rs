//! sluice-certs: X.509 with openssl for sluice identities: CA, gateway, licensee and admin certificates, CRLs.
