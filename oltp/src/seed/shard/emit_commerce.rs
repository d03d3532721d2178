//! Rows of documents and quote-to-cash: proposals and contracts with their versions, quotes and their
//! items, subscriptions, invoices with items, and payments.

use sha2::{Digest, Sha256};

use super::{Opp, Shard, SubStatus};
use crate::Result;
use crate::model::OpportunityStatus;
use crate::seed::catalog::{PRODUCT_SPECS, STAGE_PROPOSAL};
use crate::seed::csv::Emitter;
use crate::seed::ctx::TenantCtx;
use crate::seed::rng::{SeedRng, between, chance, hex_token, pick};
use crate::seed::schema::*;
use crate::seed::text;
use crate::seed::time::{DAY, HOUR, Ms, date_of};
use crate::seed::words::vat_bp;

pub(super) fn emit(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    documents(em, c, s)?;
    quotes(em, c, s)?;
    subscriptions(em, c, s)?;
    invoices(em, c, s)
}

/// A document to write: (kind, status, title, owner, account, opportunity, created, versions).
struct Doc {
    kind: &'static str,
    status: &'static str,
    title: String,
    owner: usize,
    account: usize,
    opp: Option<usize>,
    created: Ms,
    versions: i64,
}

fn plan_documents(c: &TenantCtx, s: &Shard, rng: &mut SeedRng) -> Vec<Doc> {
    let mut docs = Vec::new();
    for (i, o) in s.opps.iter().enumerate() {
        let acc = &s.accounts[o.account].name;
        if let Some(at) = o.entered(STAGE_PROPOSAL) {
            let status = match o.status {
                OpportunityStatus::Won => "approved",
                OpportunityStatus::Lost => "archived",
                OpportunityStatus::Open => pick(rng, &["draft", "in_review", "approved"]),
            };
            let versions = o.quotes.len() as i64 + i64::from(chance(rng, 0.3));
            docs.push(Doc {
                kind: "proposal",
                status,
                title: format!("Proposal — {acc}"),
                owner: o.owner,
                account: o.account,
                opp: Some(i),
                created: at - between(rng, HOUR, 2 * DAY).min(at - o.created),
                versions,
            });
        }
        if let Some(closed) = o.closed_at().filter(|_| o.won()) {
            let created = (closed - between(rng, DAY, 5 * DAY)).max(o.created);
            docs.push(Doc {
                kind: "contract",
                status: "signed",
                title: contract_title(o, acc),
                owner: o.owner,
                account: o.account,
                opp: Some(i),
                created,
                versions: 1 + i64::from(chance(rng, 0.4)),
            });
        }
    }
    for (a, acc) in s.accounts.iter().enumerate() {
        if chance(rng, 0.08) {
            let created = acc.created + between(rng, DAY, 200 * DAY);
            if created < c.t.now {
                let kind = if chance(rng, 0.5) { "presentation" } else { "note" };
                docs.push(Doc {
                    kind,
                    status: "draft",
                    title: format!("Account plan — {}", acc.name),
                    owner: acc.owner,
                    account: a,
                    opp: None,
                    created,
                    versions: 1 + i64::from(chance(rng, 0.5)),
                });
            }
        }
    }
    docs
}

fn contract_title(o: &Opp, account: &str) -> String {
    match o.kind {
        crate::model::OpportunityKind::Renewal => format!("Renewal order form — {account}"),
        crate::model::OpportunityKind::Expansion => format!("Amendment — {account}"),
        crate::model::OpportunityKind::NewBusiness => format!("Master Subscription Agreement — {account}"),
    }
}

fn documents(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "documents");
    let mut ids = c.t.shard_ids(s.ix, "documents");
    let docs = plan_documents(c, s, &mut rng);
    let mut versions = Vec::new();
    em.begin(DOCUMENTS);
    for d in &docs {
        let id = ids.at_millis(d.created as u64);
        let mut at = d.created;
        let mut last = at;
        for v in 1..=d.versions {
            if at > c.t.now {
                break;
            }
            versions.push((id, v, at, d));
            last = at;
            at += between(&mut rng, HOUR, 7 * DAY);
        }
        em.row()
            .uuid(c.t.id)
            .uuid(id)
            .text(&d.title)
            .text(d.kind)
            .text(d.status)
            .uuid(c.org.users[d.owner].id)
            .uuid(s.accounts[d.account].id)
            .opt_uuid(d.opp.map(|o| s.opps[o].id))
            .ts(d.created)
            .ts(last)
            .end()?;
    }
    em.finish()?;
    em.begin(DOCUMENT_VERSIONS);
    for (doc, v, at, d) in versions {
        let body = text::document_body(&mut rng, d.kind, &s.accounts[d.account].name, &c.t.brand, v);
        let (content_type, ext, size) = match d.kind {
            "proposal" | "contract" => ("application/pdf", "pdf", body.len() * 3 + 18_000),
            "presentation" => (
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "pptx",
                body.len() * 5 + 40_000,
            ),
            _ => ("text/markdown", "md", body.len()),
        };
        let sha = hex::encode(Sha256::digest(body.as_bytes()));
        let by = if chance(&mut rng, 0.85) { d.owner } else { c.org.users[d.owner].manager.unwrap_or(d.owner) };
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .uuid(doc)
            .int(v)
            .text(content_type)
            .int(size as i64)
            .text(&sha)
            .text(&format!("s3://orbas-documents/{}/{doc}/v{v}.{ext}", c.t.slug))
            .text(&body)
            .uuid(c.org.users[by].id)
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}

fn quotes(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(QUOTES);
    for o in &s.opps {
        for q in &o.quotes {
            let valid_until = date_of(q.created) + chrono::Days::new(30);
            em.row()
                .uuid(c.t.id)
                .uuid(q.id)
                .text(&q.number)
                .uuid(o.id)
                .uuid(s.accounts[o.account].id)
                .uuid(c.cat.books[q.book].id)
                .uuid(c.org.users[o.owner].id)
                .opt_uuid(q.approved_by.map(|u| c.org.users[u].id))
                .text(q.status)
                .text(o.currency.code())
                .date(valid_until)
                .money(q.subtotal)
                .money(q.discount)
                .money(q.tax)
                .money(q.total)
                .ts(q.created)
                .ts(q.created)
                .dec(vat_bp(s.accounts[o.account].country), 2)
                .end()?;
        }
    }
    em.finish()?;
    let mut ids = c.t.shard_ids(s.ix, "quote_items");
    em.begin(QUOTE_ITEMS);
    for q in s.opps.iter().flat_map(|o| &o.quotes) {
        for (pos, l) in q.lines.iter().enumerate() {
            let spec = PRODUCT_SPECS[l.product];
            let description = if spec.4 { format!("{} — per seat, 12 months", spec.1) } else { spec.1.to_owned() };
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(q.created as u64))
                .uuid(q.id)
                .uuid(c.cat.products[l.product])
                .int(pos as i64)
                .text(&description)
                .dec(l.qty, 2)
                .money(l.unit)
                .dec(l.discount_bp, 2)
                .money(l.line_total)
                .ts(q.created)
                .ts(q.created)
                .end()?;
        }
    }
    em.finish()
}

fn subscriptions(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(SUBSCRIPTIONS);
    for sub in &s.subs {
        let at = sub.end().unwrap_or(c.t.now).min(c.t.now);
        let seats = sub.seats_at(at);
        let mrr: i64 =
            sub.lines.iter().enumerate().map(|(i, l)| if i == 0 { seats } else { l.qty } * l.unit_month).sum();
        let status = match sub.status {
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Cancelled => "cancelled",
            SubStatus::Expired => "expired",
        };
        let cancelled = (sub.status == SubStatus::Cancelled).then_some(sub.cancel_requested).flatten();
        let updated = [Some(sub.start), cancelled, sub.invoices.last().map(|i| i.created.min(c.t.now))]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(sub.start);
        em.row()
            .uuid(c.t.id)
            .uuid(sub.id)
            .uuid(s.accounts[sub.account].id)
            .uuid(c.cat.products[sub.product])
            .uuid(s.opps[sub.opp].id)
            .text(&sub.plan_name)
            .text(status)
            .text(match sub.period_months {
                1 => "monthly",
                3 => "quarterly",
                _ => "annual",
            })
            .int(seats.max(1))
            .opt_int(sub.active_seats)
            .money(mrr)
            .text(sub.currency.code())
            .ts(sub.start)
            .ts(sub.current_period_end)
            .opt_ts(cancelled)
            .opt_text(cancelled.and(sub.cancel_reason))
            .ts(sub.start)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

fn invoices(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    em.begin(INVOICES);
    for sub in &s.subs {
        for inv in &sub.invoices {
            let last_payment = inv.payments.iter().map(|p| p.2).max();
            let updated = last_payment.unwrap_or(inv.created).max(inv.created);
            em.row()
                .uuid(c.t.id)
                .uuid(inv.id)
                .text(&inv.number)
                .uuid(s.accounts[sub.account].id)
                .uuid(sub.id)
                .text(inv.status)
                .text(sub.currency.code())
                .date(inv.issued)
                .date(inv.due)
                .money(inv.subtotal)
                .money(inv.tax)
                .money(inv.subtotal + inv.tax)
                .money(inv.paid)
                .ts(inv.created)
                .ts(updated)
                .dec(vat_bp(s.accounts[sub.account].country), 2)
                .end()?;
        }
    }
    em.finish()?;
    let mut ids = c.t.shard_ids(s.ix, "invoice_items");
    em.begin(INVOICE_ITEMS);
    for inv in s.subs.iter().flat_map(|x| &x.invoices) {
        for (product, description, qty, unit, amount) in &inv.items {
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(inv.created as u64))
                .uuid(inv.id)
                .opt_uuid(product.map(|p| c.cat.products[p]))
                .text(description)
                .dec(*qty, 2)
                .money(*unit)
                .money(*amount)
                .ts(inv.created)
                .ts(inv.created)
                .end()?;
        }
    }
    em.finish()?;
    payments(em, c, s)
}

fn payments(em: &mut Emitter<'_>, c: &TenantCtx, s: &Shard) -> Result<()> {
    let mut rng = c.t.shard_rng(s.ix, "payments");
    let mut ids = c.t.shard_ids(s.ix, "payments");
    em.begin(PAYMENTS);
    for sub in &s.subs {
        for inv in &sub.invoices {
            for (amount, status, at, method) in &inv.payments {
                let reference = match *method {
                    "card" | "direct_debit" => format!("ch_{}", hex_token(&mut rng, 12)),
                    "check" => format!("CHK-{}", between(&mut rng, 100_000, 999_999)),
                    _ => format!("BT-{}", hex_token(&mut rng, 5).to_uppercase()),
                };
                em.row()
                    .uuid(c.t.id)
                    .uuid(ids.at_millis(*at as u64))
                    .uuid(inv.id)
                    .uuid(s.accounts[sub.account].id)
                    .money(*amount)
                    .text(sub.currency.code())
                    .text(method)
                    .text(status)
                    .ts(*at)
                    .text(&reference)
                    .ts(*at)
                    .ts(*at)
                    .end()?;
            }
        }
    }
    em.finish()
}
