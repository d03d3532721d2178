//! Rows of the identity-flow tables: invites and password resets (`auth_tokens`), the mails that
//! delivered them (`email_outbox`), and each user's login history with its occasional failures.

use uuid::Uuid;

use super::csv::Emitter;
use super::ctx::TenantCtx;
use super::org::{User, UserStatus};
use super::org_emit::{doc_ip, sha256_hex};
use super::rng::{between, chance, hex_token, pick};
use super::schema::*;
use super::time::{DAY, MINUTE, Ms};
use super::words::USER_AGENTS;
use crate::Result;

const INVITE_TTL: Ms = 7 * DAY;
const RESET_TTL: Ms = 30 * MINUTE;

/// One invite or reset, and the mail that carried it.
struct Token {
    id: Uuid,
    user: usize,
    invite: bool,
    created: Ms,
    used: Option<Ms>,
}

pub(crate) fn emit(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let tokens = plan_tokens(c);
    auth_tokens(em, c, &tokens)?;
    outbox(em, c, &tokens)?;
    logins(em, c)?;
    idempotency_keys(em, c)
}

/// Keys integrations sent with their POSTs in the last day (the API keeps them 24 hours); the admin
/// always has one, so every tenant has rows here.
fn idempotency_keys(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("idempotency_keys");
    let mut ids = c.t.ids("idempotency_keys");
    em.begin(IDEMPOTENCY_KEYS);
    for (i, u) in c.org.users.iter().enumerate() {
        if u.status != UserStatus::Active || (i != c.org.admin && !chance(&mut rng, 0.2)) {
            continue;
        }
        for _ in 0..between(&mut rng, 1, 4) {
            let at = between(&mut rng, c.t.now - DAY + MINUTE, c.t.now);
            let (row, task) = (ids.at_millis(at as u64), ids.at_millis(at as u64));
            let body = format!("{{\"kind\":\"call\",\"subject\":\"Follow up {}\"}}", hex_token(&mut rng, 4));
            em.row()
                .uuid(c.t.id)
                .uuid(row)
                .uuid(u.id)
                .text(&hex_token(&mut rng, 16))
                .text("POST")
                .text("/v1/tasks")
                .text(&sha256_hex(body.as_bytes()))
                .int(201)
                .json(&serde_json::json!({"status": 201, "body": {"id": task}}))
                .ts(at + DAY)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    em.finish()
}

/// Invited users hold an unused invite; some active users reset their password (the admin always has,
/// so every tenant has rows here).
fn plan_tokens(c: &TenantCtx) -> Vec<Token> {
    let mut rng = c.t.rng("auth_tokens:plan");
    let mut ids = c.t.ids("auth_tokens");
    let mut out = Vec::new();
    for (i, u) in c.org.users.iter().enumerate() {
        if u.status == UserStatus::Invited {
            out.push(Token {
                id: ids.at_millis(u.created as u64),
                user: i,
                invite: true,
                created: u.created,
                used: None,
            });
            continue;
        }
        if i == c.org.admin || (u.status == UserStatus::Active && chance(&mut rng, 0.15)) {
            let end = u.left.unwrap_or(c.t.now);
            let at = between(&mut rng, (u.created + DAY).min(end), end);
            let used = Some(at + between(&mut rng, MINUTE, 20 * MINUTE));
            out.push(Token { id: ids.at_millis(at as u64), user: i, invite: false, created: at, used });
        }
    }
    out
}

fn auth_tokens(em: &mut Emitter<'_>, c: &TenantCtx, tokens: &[Token]) -> Result<()> {
    let mut rng = c.t.rng("auth_tokens:rows");
    let admin = c.org.users[c.org.admin].id;
    em.begin(AUTH_TOKENS);
    for t in tokens {
        let ttl = if t.invite { INVITE_TTL } else { RESET_TTL };
        let secret = hex_token(&mut rng, 32);
        em.row()
            .uuid(c.t.id)
            .uuid(t.id)
            .uuid(c.org.users[t.user].id)
            .text(if t.invite { "invite" } else { "password_reset" })
            .text(&sha256_hex(secret.as_bytes()))
            .ts(t.created + ttl)
            .opt_ts(t.used)
            .opt_uuid(t.invite.then_some(admin))
            .ts(t.created)
            .ts(t.used.unwrap_or(t.created))
            .end()?;
    }
    em.finish()
}

fn outbox(em: &mut Emitter<'_>, c: &TenantCtx, tokens: &[Token]) -> Result<()> {
    let mut rng = c.t.rng("email_outbox");
    let mut ids = c.t.ids("email_outbox");
    em.begin(EMAIL_OUTBOX);
    for t in tokens {
        let user = &c.org.users[t.user];
        let queued = t.created + between(&mut rng, 100, 2_000);
        let sent = queued + between(&mut rng, 500, 30_000);
        let (template, subject, body) = mail_text(user, t.invite);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(queued as u64))
            .text(&user.email)
            .text(template)
            .text(subject)
            .text(&body)
            .null()
            .text("sent")
            .int(1)
            .ts(queued)
            .ts(sent)
            .null()
            .ts(queued)
            .ts(sent)
            .end()?;
    }
    em.finish()
}

fn mail_text(user: &User, invite: bool) -> (&'static str, &'static str, String) {
    if invite {
        let body = format!(
            "Hi {},\n\nYou have been invited to Orbas. Accept the invitation within 7 days with the link in this mail.\n",
            user.first
        );
        ("invite", "You're invited to Orbas", body)
    } else {
        let body = format!(
            "Hi {},\n\nSomeone asked to reset your Orbas password. The link in this mail works once, for 30 minutes.\nIf it wasn't you, ignore this mail.\n",
            user.first
        );
        ("password_reset", "Reset your Orbas password", body)
    }
}

/// Successful password logins over the last weeks of each user's time here, with a few failures.
fn logins(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("login_history");
    let mut ids = c.t.ids("login_history");
    em.begin(LOGIN_HISTORY);
    for u in c.org.users.iter().filter(|u| u.status != UserStatus::Invited) {
        let end = u.left.unwrap_or(c.t.now);
        let start = (end - 60 * DAY).max(u.created);
        let (ip, agent) = (doc_ip(&mut rng), pick(&mut rng, USER_AGENTS));
        let mut times: Vec<Ms> = (0..between(&mut rng, 3, 14)).map(|_| between(&mut rng, start, end)).collect();
        times.sort_unstable();
        for at in times {
            let failed = chance(&mut rng, 0.08);
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(at as u64))
                .uuid(u.id)
                .text("password")
                .boolean(!failed)
                .opt_text(failed.then_some("bad_credentials"))
                .text(&ip)
                .text(agent)
                .ts(at)
                .ts(at)
                .ts(at)
                .end()?;
        }
    }
    em.finish()
}
