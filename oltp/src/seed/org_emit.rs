//! Rows of the organisation tables: roles and their permissions (the default matrix), departments,
//! territories, users, credentials, API keys, sessions, the tenant-level audit trail and employees.

use rand::{Rng, RngCore};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::csv::Emitter;
use super::ctx::TenantCtx;
use super::org::UserStatus;
use super::rng::{self, between, chance, hex_token, pick};
use super::schema::*;
use super::time::{DAY, HOUR, MINUTE, Ms};
use super::words::{FIRST_NAMES, LAST_NAMES, USER_AGENTS, email_local};
use crate::Result;
use crate::model::{RoleKey, default_matrix};

pub(crate) fn emit(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    roles(em, c)?;
    role_permissions(em, c)?;
    departments(em, c)?;
    territories(em, c)?;
    users(em, c)?;
    credentials(em, c)?;
    api_keys(em, c)?;
    sessions(em, c)?;
    super::identity_emit::emit(em, c)?;
    audit(em, c)?;
    employees(em, c)
}

fn role_text(k: RoleKey) -> (&'static str, &'static str) {
    match k {
        RoleKey::Admin => ("Administrator", "Full access to every record and to tenant settings."),
        RoleKey::Manager => ("Sales manager", "Reads everything; edits the records of their team."),
        RoleKey::SalesRep => ("Sales representative", "Works their own accounts, leads and deals."),
        RoleKey::Analyst => ("Analyst", "Reads all data, builds dashboards and reports, runs lake SQL."),
        RoleKey::SupportAgent => ("Support agent", "Handles tickets and the knowledge base."),
        RoleKey::ReadOnly => ("Read-only", "Reads CRM data, changes nothing."),
    }
}

fn roles(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(ROLES);
    for (k, id) in &c.org.roles {
        let (name, description) = role_text(*k);
        em.row()
            .uuid(c.t.id)
            .uuid(*id)
            .text(k.as_str())
            .text(name)
            .text(description)
            .boolean(true)
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn role_permissions(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut ids = c.t.ids("role_permissions");
    em.begin(ROLE_PERMISSIONS);
    for (role, resource, action, scope) in default_matrix() {
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(c.t.created as u64))
            .uuid(c.org.role_id(role))
            .text(resource)
            .text(action.as_str())
            .text(scope.as_str())
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn departments(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(DEPARTMENTS);
    for d in &c.org.departments {
        let parent = d.parent.map(|p| c.org.departments[p].id);
        em.row().uuid(c.t.id).uuid(d.id).text(&d.name).opt_uuid(parent).ts(c.t.created).ts(c.t.created).end()?;
    }
    em.finish()
}

fn territories(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(TERRITORIES);
    for t in &c.org.territories {
        let parent = t.parent.map(|p| c.org.territories[p].id);
        em.row()
            .uuid(c.t.id)
            .uuid(t.id)
            .text(&t.name)
            .text(t.region.code())
            .opt_uuid(parent)
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn users(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("users:rows");
    em.begin(USERS);
    for u in &c.org.users {
        let last_login = match u.status {
            UserStatus::Active => Some((c.t.now - between(&mut rng, 10 * MINUTE, 4 * DAY)).max(u.created)),
            UserStatus::Disabled => u.left.map(|l| l - between(&mut rng, HOUR, 5 * DAY)),
            UserStatus::Invited => None,
        };
        let updated = u.left.or(last_login).unwrap_or(u.created).max(u.created);
        em.row()
            .uuid(c.t.id)
            .uuid(u.id)
            .text(&u.email)
            .text(&u.full_name())
            .uuid(c.org.role_id(u.role))
            .opt_uuid(u.manager.map(|m| c.org.users[m].id))
            .opt_uuid(u.territory.map(|t| c.org.territories[t].id))
            .uuid(c.org.departments[u.department].id)
            .text(u.status.as_str())
            .text(u.region.map_or(c.t.timezone, |r| r.timezone()))
            .opt_ts(last_login)
            .ts(u.created)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

fn credentials(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("user_credentials");
    // The demo password's SCRAM verifier (for the SQL port), one per tenant with a seed-derived salt.
    let mut salt = [0u8; 16];
    c.t.rng("scram-salt").fill_bytes(&mut salt);
    let scram = crate::auth::scram::ScramVerifier::derive(super::generate::DEMO_PASSWORD, &salt, 4096).encode();
    em.begin(USER_CREDENTIALS);
    for u in c.org.users.iter().filter(|u| u.status != UserStatus::Invited) {
        let set_at = u.created + between(&mut rng, MINUTE, 2 * HOUR);
        let failed = if chance(&mut rng, 0.08) { between(&mut rng, 1, 5) } else { 0 };
        // A lockout from the past weeks that has run out by the time history ends: the demo ends its
        // history at today's midnight, so a lock reaching past it would refuse the documented logins
        // (the banner's admin, the tutorial's rep) for the first minutes of a day.
        let locked = (failed >= 4).then(|| c.t.now - between(&mut rng, HOUR, 21 * DAY) + 15 * MINUTE);
        em.row()
            .uuid(c.t.id)
            .uuid(u.id)
            .text(&c.password_hash)
            .text(&scram)
            .int(failed)
            .opt_ts(locked)
            .ts(set_at)
            .ts(u.created)
            .ts(set_at)
            .end()?;
    }
    em.finish()
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn api_keys(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("api_keys:rows");
    const NAMES: &[&str] =
        &["Data warehouse export", "Marketing automation sync", "Billing system webhook", "BI tool", "CI smoke test"];
    em.begin(API_KEYS);
    for (i, k) in c.org.api_keys.iter().enumerate() {
        let prefix = format!("ok_{}", hex_token(&mut rng, 6));
        let secret = format!("{prefix}_{}", hex_token(&mut rng, 24));
        let scopes: &[&str] = match i % 3 {
            0 => &["crm:read", "crm:write"],
            1 => &["crm:read", "lake:read"],
            _ => &["crm:read"],
        };
        let revoked =
            chance(&mut rng, 0.15).then(|| k.created + between(&mut rng, DAY, (c.t.now - k.created).max(2 * DAY)));
        let revoked = revoked.filter(|r| *r < c.t.now);
        let expires = chance(&mut rng, 0.5).then_some(k.created + 365 * DAY);
        let last_used =
            Some(revoked.unwrap_or(c.t.now) - between(&mut rng, MINUTE, 3 * DAY)).filter(|t| *t > k.created);
        em.row()
            .uuid(c.t.id)
            .uuid(k.id)
            .uuid(c.org.users[k.user].id)
            .text(NAMES[i % NAMES.len()])
            .text(&prefix)
            .text(&sha256_hex(secret.as_bytes()))
            .null()
            .text_array(scopes)
            .int(pick(&mut rng, &[120, 600, 1200]))
            .opt_ts(expires)
            .opt_ts(revoked)
            .opt_ts(last_used)
            .ts(k.created)
            .ts(revoked.unwrap_or(k.created))
            .end()?;
    }
    em.finish()
}

pub(super) fn doc_ip(rng: &mut impl Rng) -> String {
    let net = pick(rng, &["192.0.2", "198.51.100", "203.0.113"]);
    format!("{net}.{}", rng.random_range(1..255))
}

/// Refresh-token chains: each session was replaced by the next (rotation), the last one is live
/// unless the user logged out or left.
fn sessions(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("sessions");
    let mut ids = c.t.ids("sessions");
    em.begin(SESSIONS);
    for u in c.org.users.iter().filter(|u| u.status != UserStatus::Invited) {
        let end = u.left.unwrap_or(c.t.now);
        let len = if u.left.is_some() { between(&mut rng, 1, 3) } else { between(&mut rng, 2, 7) };
        let mut t = (end - between(&mut rng, 20 * DAY, 60 * DAY)).max(u.created + HOUR);
        let mut chain: Vec<(Uuid, Ms)> = Vec::new();
        for _ in 0..len {
            if t >= end {
                break;
            }
            chain.push((ids.at_millis(t as u64), t));
            t += between(&mut rng, DAY, 8 * DAY);
        }
        let (ip, agent) = (doc_ip(&mut rng), pick(&mut rng, USER_AGENTS));
        for (i, (id, created)) in chain.iter().enumerate() {
            let next = chain.get(i + 1);
            let revoked = match next {
                Some((_, n)) => Some(*n),
                None if u.left.is_some() => u.left,
                None if chance(&mut rng, 0.2) => Some((*created + between(&mut rng, HOUR, 5 * DAY)).min(c.t.now)),
                None => None,
            };
            let token = hex_token(&mut rng, 32);
            em.row()
                .uuid(c.t.id)
                .uuid(*id)
                .uuid(u.id)
                .text(&sha256_hex(token.as_bytes()))
                .ts(*created + 30 * DAY)
                .opt_ts(revoked)
                .opt_uuid(next.map(|n| n.0))
                .text(&ip)
                .text(agent)
                .ts(*created)
                .ts(revoked.unwrap_or(*created))
                .end()?;
        }
    }
    em.finish()
}

/// Tenant-level audit trail: user and API-key creation.
fn audit(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("audit:org");
    let mut ids = c.t.ids("audit:org");
    let admin = c.org.users[c.org.admin].id;
    em.begin(AUDIT_LOGS);
    for (i, u) in c.org.users.iter().enumerate() {
        let actor = (i != c.org.admin).then_some(admin);
        let changes =
            json!({"email": {"before": null, "after": u.email}, "role": {"before": null, "after": u.role.as_str()}});
        let at = u.created + between(&mut rng, 1_000, MINUTE);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .opt_uuid(actor)
            .null()
            .text("user.create")
            .text("users")
            .uuid(u.id)
            .json(&changes)
            .text(&format!("req_{}", hex_token(&mut rng, 8)))
            .text(&doc_ip(&mut rng))
            .ts(at)
            .ts(at)
            .end()?;
    }
    for k in &c.org.api_keys {
        let at = k.created + between(&mut rng, 1_000, MINUTE);
        let changes = json!({"name": {"before": null, "after": "api key"}});
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .uuid(c.org.users[k.user].id)
            .null()
            .text("api_key.create")
            .text("api_keys")
            .uuid(k.id)
            .json(&changes)
            .text(&format!("req_{}", hex_token(&mut rng, 8)))
            .text(&doc_ip(&mut rng))
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}

/// One employee per user (same name and e-mail) plus staff without a CRM login.
fn employees(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("employees");
    let mut ids = c.t.ids("employees");
    let emp_ids: Vec<Uuid> = c.org.users.iter().map(|u| ids.at_millis(u.created as u64)).collect();
    em.begin(EMPLOYEES);
    for (i, u) in c.org.users.iter().enumerate() {
        let status = match u.status {
            UserStatus::Disabled => "terminated",
            _ if chance(&mut rng, 0.02) => "on_leave",
            _ => "active",
        };
        em.row()
            .uuid(c.t.id)
            .uuid(emp_ids[i])
            .uuid(u.id)
            .uuid(c.org.departments[u.department].id)
            .opt_uuid(u.manager.map(|m| emp_ids[m]))
            .text(&u.full_name())
            .text(&u.email)
            .text(u.title)
            .date(super::time::date_of(u.created))
            .text(status)
            .ts(u.created)
            .ts(u.left.unwrap_or(u.created))
            .end()?;
    }
    let d = c.org.dept;
    let staff: [(usize, &str); 4] = [
        (d.finance, "Accountant"),
        (d.engineering, "Software Engineer"),
        (d.success, "Customer Success Manager"),
        (d.engineering, "Site Reliability Engineer"),
    ];
    for i in 0..3 + c.org.users.len() / 5 {
        let (dept, title) = staff[i % staff.len()];
        let (first, last) = (pick(&mut rng, FIRST_NAMES), pick(&mut rng, LAST_NAMES));
        let hired = c.t.created + rng.random_range(0..(c.t.now - c.t.created - 30 * DAY));
        let email = format!("{}.{i}@{}", email_local(first, last), c.t.domain);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(hired as u64))
            .null()
            .uuid(c.org.departments[dept].id)
            .opt_uuid(Some(emp_ids[c.org.admin]))
            .text(&format!("{first} {last}"))
            .text(&email)
            .text(title)
            .date(super::time::date_of(hired))
            .text("active")
            .ts(hired)
            .ts(hired)
            .end()?;
    }
    let _ = rng::uniform(&mut rng, 0.0, 1.0);
    em.finish()
}
