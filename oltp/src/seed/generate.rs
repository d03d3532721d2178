//! The pure generator: builds each tenant and emits its rows into a [`Sink`], tenant by tenant, in
//! foreign-key order. No I/O here besides what the sink does.

use argon2::{Argon2, PasswordHasher};
use rand::RngCore;

use super::catalog::Catalog;
use super::csv::{Counts, Emitter, Sink};
use super::ctx::{self, Accumulators, Counters, Tenant, TenantCtx};
use super::org::Org;
use super::{SeedConfig, catalog_emit, org_emit, rng, shard, trailing};
use crate::model::TenantId;
use crate::{Error, Result};

/// The demo users' password (every generated user can log in with it).
pub const DEMO_PASSWORD: &str = "orbas-demo-password";

/// What a run produced, besides the rows themselves.
#[derive(Debug)]
pub(crate) struct Generated {
    pub tenants: Vec<(TenantId, String)>,
    pub counts: Counts,
}

/// Generates every tenant of `cfg` into `sink`, one after the other.
pub(crate) fn generate(cfg: &SeedConfig, sink: &mut dyn Sink) -> Result<Generated> {
    let password_hash = password_hash(cfg.seed)?;
    let mut out = Generated { tenants: Vec::new(), counts: vec![(0, 0); super::schema::TABLES.len()] };
    for t in ctx::tenants(cfg) {
        let (id, slug, counts) = generate_tenant(t, &password_hash, sink)?;
        out.tenants.push((id, slug));
        add_counts(&mut out.counts, &counts);
    }
    Ok(out)
}

/// Generates one tenant (tenants are independent: they can be generated in any order or in parallel).
pub(crate) fn generate_tenant(
    t: Tenant,
    password_hash: &str,
    sink: &mut dyn Sink,
) -> Result<(TenantId, String, Counts)> {
    let org = Org::build(&t);
    let cat = Catalog::build(&t, &org);
    let mut c = TenantCtx {
        t,
        org,
        cat,
        counters: Counters::default(),
        acc: Accumulators::default(),
        password_hash: password_hash.to_owned(),
    };
    let mut em = Emitter::new(sink);
    tenant(&mut em, &mut c)?;
    Ok((TenantId(c.t.id), c.t.slug.clone(), em.into_counts()))
}

pub(crate) fn add_counts(total: &mut Counts, more: &Counts) {
    for (t, m) in total.iter_mut().zip(more) {
        t.0 += m.0;
        t.1 += m.1;
    }
}

fn tenant(em: &mut Emitter<'_>, c: &mut TenantCtx) -> Result<()> {
    em.sink().begin_tenant(c.t.id, &c.t.slug)?;
    catalog_emit::emit_head(em, c)?;
    org_emit::emit(em, c)?;
    catalog_emit::emit_tail(em, c)?;
    for ix in 0..c.t.shards {
        let s = shard::build(c, ix);
        shard::emit(em, c, &s)?;
    }
    trailing::emit(em, c)?;
    em.sink().end_tenant()
}

/// argon2id (default parameters) of the demo password, with a salt derived from the seed: computed
/// once per run, the same for every user.
pub(crate) fn password_hash(seed: u64) -> Result<String> {
    let mut salt = [0u8; 16];
    rng::stream(seed, &[], "password-salt").fill_bytes(&mut salt);
    Argon2::default()
        .hash_password_with_salt(DEMO_PASSWORD.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Seed { message: format!("hashing the demo password: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[test]
    fn demo_password_hash_verifies() {
        let hash = password_hash(42).unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(password_hash(42).unwrap_or_default(), hash, "deterministic");
        let ok = Argon2::default().verify_password(DEMO_PASSWORD.as_bytes(), hash.as_str());
        assert!(ok.is_ok());
    }
}
