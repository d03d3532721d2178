//! Rows of the tenant-wide reference tables: the tenant itself, currency rates, campaigns, tags,
//! segments, pipeline stages, SLA policies, the knowledge base, products and price books, the model
//! registry and the seed template (the KPI, dashboard and report tables stay empty: see [`configuration`]).

use rand::Rng;
use serde_json::{Value, json};

use super::GENERATOR_VERSION;
use super::catalog::{MODELS, PRODUCT_SPECS, SLA, STAGE_LOST, STAGE_PROBABILITY, STAGE_WON, TAG_SPECS};
use super::csv::Emitter;
use super::ctx::{Cur, TenantCtx};
use super::rng::{between, lognormal, pick, uniform};
use super::schema::*;
use super::text;
use super::time::{DAY, HOUR, ms_of};
use crate::Result;

/// `tenants` and `currency_rates`: the first rows of a tenant.
pub(crate) fn emit_head(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let t = &c.t;
    em.begin(TENANTS);
    em.row()
        .uuid(t.id)
        .text(&t.name)
        .text(&t.slug)
        .text("active")
        .text(t.currency.code())
        .text(t.timezone)
        .int(i64::from(t.cal.start_month))
        .text(if t.cal.named_by_end { "end" } else { "start" })
        .ts(t.created)
        .ts(t.created)
        .end()?;
    em.finish()?;
    let mut ids = t.ids("currency_rates");
    em.begin(CURRENCY_RATES);
    for (m, usd) in c.cat.rates.usd.iter().enumerate() {
        let valid_on = super::time::add_months(c.cat.rates.first_month, m as i32);
        let at = ms_of(valid_on).max(t.created);
        if ms_of(valid_on) > t.now {
            break;
        }
        for from in Cur::ALL {
            for to in Cur::ALL.into_iter().filter(|to| *to != from) {
                let rate = (usd[from.index()] / usd[to.index()] * 1e10).round() as i64;
                em.row()
                    .uuid(t.id)
                    .uuid(ids.at_millis(at as u64))
                    .text(from.code())
                    .text(to.code())
                    .dec(rate, 10)
                    .date(valid_on)
                    .ts(at)
                    .ts(at)
                    .end()?;
            }
        }
    }
    em.finish()
}

/// The reference tables that follow the organisation.
pub(crate) fn emit_tail(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    campaigns(em, c)?;
    tags(em, c)?;
    segments(em, c)?;
    stages(em, c)?;
    sla_policies(em, c)?;
    knowledge(em, c)?;
    products(em, c)?;
    price_books(em, c)?;
    models(em, c)?;
    configuration(em)?;
    seed_template(em, c)
}

fn campaigns(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("campaigns:rows");
    em.begin(CAMPAIGNS);
    for k in &c.cat.campaigns {
        let (start, end) = (ms_of(k.starts), ms_of(k.ends));
        let status = match () {
            _ if k.aborted => "aborted",
            _ if end < c.t.now => "completed",
            _ if start <= c.t.now => "active",
            _ => "planned",
        };
        let cost = match status {
            "completed" => Some(k.budget as f64 * uniform(&mut rng, 0.7, 1.15)),
            "active" => Some(k.budget as f64 * (c.t.now - start) as f64 / (end - start).max(1) as f64),
            "aborted" => Some(k.budget as f64 * uniform(&mut rng, 0.05, 0.4)),
            _ => None,
        };
        let updated = if status == "planned" { k.created } else { start.min(c.t.now) };
        em.row()
            .uuid(c.t.id)
            .uuid(k.id)
            .text(&k.name)
            .text(k.kind)
            .text(status)
            .uuid(c.org.users[k.owner].id)
            .date(k.starts)
            .date(k.ends)
            .money(k.budget)
            .opt_money(cost.map(|v| v.round() as i64))
            .text(c.t.currency.code())
            .ts(k.created)
            .ts(updated)
            .end()?;
    }
    em.finish()
}

fn tags(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(TAGS);
    for (id, (name, color)) in c.cat.tags.iter().zip(TAG_SPECS) {
        em.row().uuid(c.t.id).uuid(*id).text(name).text(color).ts(c.t.created).ts(c.t.created).end()?;
    }
    em.finish()
}

fn segments(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut ids = c.t.ids("segments");
    let specs: [(&str, &str, Value); 6] = [
        (
            "Enterprise software accounts",
            "account",
            json!({"all": [{"field": "industry", "op": "eq", "value": "software"}, {"field": "segment", "op": "eq", "value": "enterprise"}]}),
        ),
        (
            "EMEA mid-market",
            "account",
            json!({"all": [{"field": "billing_country", "op": "in", "value": ["GB", "DE", "FR", "NL", "SE", "ES", "IT"]}, {"field": "segment", "op": "eq", "value": "mid_market"}]}),
        ),
        (
            "Former customers",
            "account",
            json!({"all": [{"field": "lifecycle_stage", "op": "eq", "value": "former_customer"}]}),
        ),
        ("C-level contacts", "contact", json!({"all": [{"field": "seniority", "op": "eq", "value": "c_level"}]})),
        (
            "Hot inbound leads",
            "lead",
            json!({"all": [{"field": "source", "op": "in", "value": ["web", "referral", "event"]}, {"field": "last_activity_at", "op": "within_days", "value": 14}]}),
        ),
        (
            "Stalled leads",
            "lead",
            json!({"all": [{"field": "status", "op": "eq", "value": "nurturing"}, {"field": "last_activity_at", "op": "older_than_days", "value": 60}]}),
        ),
    ];
    em.begin(SEGMENTS);
    for (i, (name, entity, def)) in specs.iter().enumerate() {
        let at = c.t.history_start + i as i64 * 17 * DAY;
        let owner = if i % 2 == 0 { c.org.marketing } else { c.org.admin };
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(at as u64))
            .text(name)
            .text(entity)
            .json(def)
            .boolean(i != 2)
            .uuid(c.org.users[owner].id)
            .ts(at)
            .ts(at)
            .end()?;
    }
    em.finish()
}

fn stages(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(PIPELINE_STAGES);
    for (pos, s) in c.cat.stages.iter().enumerate() {
        em.row()
            .uuid(c.t.id)
            .uuid(s.id)
            .text("default")
            .text(s.name)
            .int(pos as i64)
            .dec(STAGE_PROBABILITY[pos] * 100, 2)
            .boolean(pos == STAGE_WON as usize)
            .boolean(pos == STAGE_LOST as usize)
            .text_array(s.required)
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn sla_policies(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(SLA_POLICIES);
    for (id, (name, priority, first, resolution)) in c.cat.sla.iter().zip(SLA) {
        em.row()
            .uuid(c.t.id)
            .uuid(*id)
            .text(name)
            .text(priority)
            .int(first)
            .int(resolution)
            .boolean(priority != "urgent")
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn knowledge(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let mut rng = c.t.rng("knowledge_articles");
    let mut ids = c.t.ids("knowledge_articles");
    let mut slugs = std::collections::HashSet::new();
    let authors: Vec<usize> = c.org.support_agents.clone();
    em.begin(KNOWLEDGE_ARTICLES);
    for _ in 0..(12 + c.t.accounts / 300).min(400) {
        let (title, mut slug, category, body) = text::kb_article(&mut rng, &c.t.brand);
        let mut n = 2;
        while !slugs.insert(slug.clone()) {
            slug = format!("{}-{n}", slug.trim_end_matches(|ch: char| ch.is_ascii_digit() || ch == '-'));
            n += 1;
        }
        let created = c.t.created + rng.random_range(0..(c.t.now - c.t.created - DAY));
        let status = pick(&mut rng, &["published", "published", "published", "published", "draft", "archived"]);
        let published =
            (status != "draft").then(|| created + between(&mut rng, HOUR, 10 * DAY)).filter(|p| *p < c.t.now);
        let status = if published.is_none() { "draft" } else { status };
        let age_days = ((c.t.now - created) / DAY).max(1) as f64;
        let views = if published.is_some() { (lognormal(&mut rng, 3.0, 0.8) * age_days) as i64 } else { 0 };
        let author = authors.get(rng.random_range(0..authors.len().max(1))).copied().unwrap_or(c.org.admin);
        em.row()
            .uuid(c.t.id)
            .uuid(ids.at_millis(created as u64))
            .text(&title)
            .text(&slug)
            .text(&body)
            .text(category)
            .text("en")
            .text(status)
            .uuid(c.org.users[author].id)
            .opt_ts(published)
            .int(views)
            .int((views as f64 * uniform(&mut rng, 0.02, 0.12)) as i64)
            .ts(created)
            .ts(published.unwrap_or(created))
            .end()?;
    }
    em.finish()
}

fn products(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(PRODUCTS);
    for (id, (sku, name, family, recurring, per_seat, active, _)) in c.cat.products.iter().zip(PRODUCT_SPECS) {
        let description = match (recurring, per_seat) {
            (true, true) => format!("{} {name}, billed per seat.", c.t.brand),
            (true, false) => format!("{} {name}, flat annual fee.", c.t.brand),
            _ => format!("{name}, one-off."),
        };
        em.row()
            .uuid(c.t.id)
            .uuid(*id)
            .text(sku)
            .text(&format!("{} {name}", c.t.brand))
            .text(family.as_str())
            .text(&description)
            .boolean(*recurring)
            .boolean(*active)
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()
}

fn price_books(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    em.begin(PRICE_BOOKS);
    for b in &c.cat.books {
        em.row()
            .uuid(c.t.id)
            .uuid(b.id)
            .text(&b.name)
            .text(b.currency.code())
            .boolean(b.default)
            .boolean(b.active)
            .ts(c.t.created)
            .ts(c.t.created)
            .end()?;
    }
    em.finish()?;
    let mut ids = c.t.ids("price_book_entries");
    em.begin(PRICE_BOOK_ENTRIES);
    for b in &c.cat.books {
        for (product, price) in c.cat.products.iter().zip(&b.price) {
            em.row()
                .uuid(c.t.id)
                .uuid(ids.at_millis(c.t.created as u64))
                .uuid(b.id)
                .uuid(*product)
                .money(*price)
                .ts(c.t.created)
                .ts(c.t.created)
                .end()?;
        }
    }
    em.finish()
}

fn models(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let created = c.t.now - 200 * DAY;
    em.begin(AI_MODELS);
    for (id, (key, name, task, description)) in c.cat.models.iter().zip(MODELS) {
        em.row()
            .uuid(c.t.id)
            .uuid(*id)
            .text(key)
            .text(name)
            .text(task)
            .text(description)
            .ts(created)
            .ts(created)
            .end()?;
    }
    em.finish()?;
    let mut rng = c.t.rng("model_versions");
    let trained = c.t.now - 20 * DAY;
    em.begin(MODEL_VERSIONS);
    for (i, (model, version)) in c.cat.models.iter().zip(&c.cat.model_versions).enumerate() {
        let auc = uniform(&mut rng, 0.68, 0.81);
        let metrics =
            json!({"auc": (auc * 1000.0).round() / 1000.0, "log_loss": ((1.0 - auc) * 1.3 * 1000.0).round() / 1000.0});
        let params = json!({"kind": "baseline", "regularization": 1.0, "features": ["stage", "days_since_last_activity", "activity_count_30d"]});
        let rows = between(&mut rng, 500, 5_000 + c.t.accounts as i64 * 3);
        em.row()
            .uuid(c.t.id)
            .uuid(*version)
            .uuid(*model)
            .int(1)
            .text("active")
            .json(&params)
            .json(&metrics)
            .int(rows)
            .text(&format!("file:///var/lib/orbas/models/{}/{}/v1.json", c.t.slug, MODELS[i].0))
            .ts(trained)
            .ts(trained)
            .ts(trained)
            .end()?;
    }
    let mut ids = c.t.ids("model_versions:v2");
    let at = c.t.now - 2 * DAY;
    em.row()
        .uuid(c.t.id)
        .uuid(ids.at_millis(at as u64))
        .uuid(c.cat.models[1])
        .int(2)
        .text("training")
        .json(&json!({"kind": "gradient_boosting", "trees": 200}))
        .json(&json!({}))
        .null()
        .null()
        .null()
        .ts(at)
        .ts(at)
        .end()?;
    em.finish()
}

/// KPIs, dashboards, their widgets and scheduled reports are configuration, not generated history: the
/// standard KPI set and each role's dashboard are installed after seeding
/// (`orbas_dashboards::store::install_defaults`), so the generator leaves these tables empty.
fn configuration(em: &mut Emitter<'_>) -> Result<()> {
    for table in [KPI_DEFINITIONS, DASHBOARDS, DASHBOARD_WIDGETS, SCHEDULED_REPORTS] {
        em.begin(table);
        em.finish()?;
    }
    Ok(())
}

fn seed_template(em: &mut Emitter<'_>, c: &TenantCtx) -> Result<()> {
    let t = &c.t;
    let params = json!({
        "tenant_index": t.ix, "tenants": t.tenants, "weight": t.weight, "accounts": t.accounts, "shards": t.shards,
        "as_of": t.as_of.to_string(), "corporate_currency": t.currency.code(),
        "fiscal_year_start_month": t.cal.start_month, "history_days": 730,
    });
    let at = t.created;
    let id = t.ids("seed_templates").at_millis(at as u64);
    em.begin(SEED_TEMPLATES);
    em.row()
        .uuid(t.id)
        .uuid(id)
        .text("orbas-synthetic")
        .text("Deterministic synthetic CRM data (orbas seed).")
        .int(i64::from(GENERATOR_VERSION))
        .int(t.seed as i64)
        .float(t.scale)
        .json(&params)
        .ts(at)
        .ts(at)
        .end()?;
    em.finish()
}
