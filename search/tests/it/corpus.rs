//! A fixed CRM corpus written with plain SQL: one tenant's records under stable labels, optionally the
//! same texts again in a second tenant (new ids) to prove isolation.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

/// The records of one tenant: label → id, and the users who own them.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub rep: Uuid,
    pub other_rep: Uuid,
    pub ids: HashMap<&'static str, Uuid>,
}

impl Tenant {
    pub fn id_of(&self, label: &str) -> String {
        self.ids.get(label).unwrap_or_else(|| panic!("no record labelled {label}")).to_string()
    }
}

/// (label, name, domain, description, industry)
pub const ACCOUNTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "acme",
        "Acme Robotics",
        "acme-robotics.com",
        "Industrial robot arms for automotive assembly lines",
        "manufacturing",
    ),
    ("globex", "Globex Corporation", "globex.com", "Nuclear energy consulting and plant operations", "energy"),
    ("initech", "Initech Software", "initech.io", "TPS report automation for enterprises", "software"),
    (
        "umbrella",
        "Umbrella Pharmaceuticals",
        "umbrella-pharma.com",
        "Vaccine research and clinical trials",
        "healthcare",
    ),
    ("stark", "Stark Industries", "stark.com", "Defense contractor building clean arc reactors", "manufacturing"),
    ("wayne", "Wayne Enterprises", "wayne.com", "Conglomerate with shipping and logistics arms", "logistics"),
    ("hooli", "Hooli", "hooli.xyz", "Search engine and cloud platform giant", "software"),
    ("pied", "Pied Piper", "piedpiper.com", "Middle-out compression startup", "software"),
    ("soylent", "Soylent Foods", "soylent.com", "Nutrition drinks and meal replacements", "retail"),
    ("cyberdyne", "Cyberdyne Systems", "cyberdyne.com", "Neural net processors for defense", "software"),
];

/// (label, first, last, email, job title, account label)
pub const CONTACTS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("hamilton", "Margaret", "Hamilton", "margaret.hamilton@acme-robotics.com", "Director of Engineering", "acme"),
    ("hopper", "Grace", "Hopper", "grace@initech.io", "Chief Architect", "initech"),
    ("turing", "Alan", "Turing", "alan.turing@globex.com", "Head of Cryptanalysis", "globex"),
    ("lovelace", "Ada", "Lovelace", "ada@stark.com", "VP Analytics", "stark"),
    ("torvalds", "Linus", "Torvalds", "linus@hooli.xyz", "Kernel Maintainer", "hooli"),
    ("johnson", "Katherine", "Johnson", "katherine.johnson@wayne.com", "Trajectory Analyst", "wayne"),
];

/// (label, first, last, email, company, owned by the rep?)
pub const LEADS: &[(&str, &str, &str, &str, &str, bool)] = &[
    ("perlman", "Radia", "Perlman", "radia@spanning.net", "Spanning Networks", true),
    ("dijkstra", "Edsger", "Dijkstra", "edsger@shortestpath.nl", "Shortest Path Logistics", true),
    ("allen", "Frances", "Allen", "fran@compilerlabs.com", "Compiler Labs", false),
    ("berners", "Tim", "Berners", "tim@webfoundry.org", "Webfoundry", false),
];

/// (label, name, next step, account label)
pub const OPPORTUNITIES: &[(&str, &str, &str, &str)] = &[
    ("welding", "Welding cell expansion", "Send revised quote for six welding robots", "acme"),
    ("reactor", "Reactor maintenance renewal", "Schedule the plant walkthrough", "globex"),
    ("migration", "Data center migration", "Security review with their CISO", "hooli"),
];

/// (label, subject, description)
pub const TICKETS: &[(&str, &str, &str)] = &[
    ("printer", "Printer jams on every invoice run", "The office printer stops mid batch when printing invoices"),
    ("password", "Password reset email never arrives", "Users click forgot password but get nothing"),
    ("dashboard", "Dashboard export to PDF fails with timeout", "Exporting the sales dashboard spins forever"),
    ("refund", "Refund requested for duplicate charge", "Customer was billed twice this month"),
    ("crash", "Mobile app crashes on login screen", "Android users see a crash right after entering credentials"),
];

/// (label, title, slug, body)
pub const ARTICLES: &[(&str, &str, &str, &str)] = &[
    (
        "sso",
        "How to configure single sign-on with Okta",
        "sso-okta",
        "Create a SAML app in Okta, then paste the metadata URL.",
    ),
    (
        "invoice_pdf",
        "Troubleshooting invoice PDF generation",
        "invoice-pdf",
        "When invoice PDFs come out blank, check the template fonts.",
    ),
    (
        "twofa",
        "Setting up two-factor authentication",
        "two-factor",
        "Enable TOTP in your profile and scan the QR code.",
    ),
    (
        "spreadsheets",
        "Exporting reports to spreadsheets",
        "export-reports",
        "Every report can be downloaded as CSV or XLSX.",
    ),
];

/// (label, title, kind)
pub const DOCUMENTS: &[(&str, &str, &str)] = &[
    ("msa", "Master services agreement Globex", "contract"),
    ("qbr", "Quarterly business review deck Hooli", "presentation"),
];

/// (label, full name, e-mail, title)
pub const EMPLOYEES: &[(&str, &str, &str, &str)] = &[
    ("lamarr", "Hedy Lamarr", "hedy@orbas.example", "Head of Wireless Research"),
    ("shannon", "Claude Shannon", "claude@orbas.example", "Information Theory Lead"),
];

/// The message on the password ticket (label `sso_message`).
pub const MESSAGE: &str = "The SSO certificate expired yesterday, so reset links were never signed.";

async fn exec(pool: &PgPool, sql: &str, binds: &[&str]) {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Writes the corpus as tenant `slug`.
pub async fn load(pool: &PgPool, slug: &str) -> Tenant {
    let mut t = Tenant { id: Uuid::now_v7(), rep: Uuid::now_v7(), other_rep: Uuid::now_v7(), ids: HashMap::new() };
    let (tid, rep, other) = (t.id.to_string(), t.rep.to_string(), t.other_rep.to_string());
    exec(pool, "INSERT INTO tenants (id, name, slug) VALUES ($1::uuid, $2, $2)", &[&tid, slug]).await;
    let role = Uuid::now_v7().to_string();
    exec(
        pool,
        "INSERT INTO roles (tenant_id, id, key, name) VALUES ($1::uuid, $2::uuid, 'sales_rep', 'Sales rep')",
        &[&tid, &role],
    )
    .await;
    for (u, mail) in [(&rep, "rep"), (&other, "other")] {
        let email = format!("{mail}@{slug}.example");
        exec(
            pool,
            "INSERT INTO users (tenant_id, id, email, full_name, role_id) VALUES ($1::uuid, $2::uuid, $3, $3, $4::uuid)",
            &[&tid, u, &email, &role],
        )
        .await;
    }
    let ids = &mut t.ids;
    let mut account_ids = HashMap::new();
    for (label, name, domain, desc, industry) in ACCOUNTS {
        let i = new_id(ids, label);
        account_ids.insert(*label, i.clone());
        exec(
            pool,
            "INSERT INTO accounts (tenant_id, id, name, domain, description, industry, owner_id)
                    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7::uuid)",
            &[&tid, &i, name, domain, desc, industry, &rep],
        )
        .await;
    }
    for (label, first, last, email, title, account) in CONTACTS {
        let i = new_id(ids, label);
        exec(
            pool,
            "INSERT INTO contacts (tenant_id, id, first_name, last_name, email, title, account_id, owner_id)
                    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7::uuid, $8::uuid)",
            &[&tid, &i, first, last, email, title, &account_ids[account], &rep],
        )
        .await;
    }
    for (label, first, last, email, company, mine) in LEADS {
        let i = new_id(ids, label);
        let owner = if *mine { &rep } else { &other };
        exec(
            pool,
            "INSERT INTO leads (tenant_id, id, first_name, last_name, email, company, source, owner_id)
                    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, 'web', $7::uuid)",
            &[&tid, &i, first, last, email, company, owner],
        )
        .await;
    }
    let stage = Uuid::now_v7().to_string();
    exec(pool, "INSERT INTO pipeline_stages (tenant_id, id, name, position, probability) VALUES ($1::uuid, $2::uuid, 'Qualify', 0, 10)", &[&tid, &stage]).await;
    for (label, name, next, account) in OPPORTUNITIES {
        let i = new_id(ids, label);
        exec(pool, "INSERT INTO opportunities (tenant_id, id, account_id, stage_id, name, probability, close_date, next_step, owner_id)
                    VALUES ($1::uuid, $2::uuid, $3::uuid, $4::uuid, $5, 10, '2027-03-31', $6, $7::uuid)",
             &[&tid, &i, &account_ids[account], &stage, name, next, &rep]).await;
    }
    for (n, (label, subject, desc)) in TICKETS.iter().enumerate() {
        let i = new_id(ids, label);
        let number = format!("T-{}", 100 + n);
        exec(
            pool,
            "INSERT INTO tickets (tenant_id, id, number, subject, description, owner_id)
                    VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::uuid)",
            &[&tid, &i, &number, subject, desc, &other],
        )
        .await;
    }
    let m = new_id(ids, "sso_message");
    let ticket = ids.get("password").map(Uuid::to_string).unwrap_or_default();
    exec(pool, "INSERT INTO ticket_messages (tenant_id, id, ticket_id, body, sent_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, now())",
         &[&tid, &m, &ticket, MESSAGE]).await;
    for (label, title, slug, body) in ARTICLES {
        let i = new_id(ids, label);
        exec(
            pool,
            "INSERT INTO knowledge_articles (tenant_id, id, title, slug, body) VALUES ($1::uuid, $2::uuid, $3, $4, $5)",
            &[&tid, &i, title, slug, body],
        )
        .await;
    }
    for (label, title, kind) in DOCUMENTS {
        let i = new_id(ids, label);
        exec(pool, "INSERT INTO documents (tenant_id, id, title, kind, owner_id) VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid)",
             &[&tid, &i, title, kind, &rep]).await;
    }
    for (label, name, email, title) in EMPLOYEES {
        let i = new_id(ids, label);
        exec(pool, "INSERT INTO employees (tenant_id, id, full_name, email, title, hire_date) VALUES ($1::uuid, $2::uuid, $3, $4, $5, '2020-01-01')",
             &[&tid, &i, name, email, title]).await;
    }
    t
}

fn new_id(ids: &mut HashMap<&'static str, Uuid>, label: &'static str) -> String {
    let v = Uuid::now_v7();
    ids.insert(label, v);
    v.to_string()
}

/// Every record of the corpus (the number of documents one tenant contributes).
pub fn size() -> usize {
    ACCOUNTS.len()
        + CONTACTS.len()
        + LEADS.len()
        + OPPORTUNITIES.len()
        + TICKETS.len()
        + 1
        + ARTICLES.len()
        + DOCUMENTS.len()
        + EMPLOYEES.len()
}
