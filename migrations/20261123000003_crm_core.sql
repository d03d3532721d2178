-- Contact, account and lead 360: accounts (hierarchy via parent_id), contacts, leads, the relationship
-- graph, tags, segments, the interaction log and marketing campaigns.

CREATE TABLE accounts (
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    id                 uuid PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    domain             text CHECK (domain ~ '^[a-z0-9.-]+\.[a-z]{2,}$'),
    parent_id          uuid,
    owner_id           uuid,
    territory_id       uuid,
    industry           text CHECK (industry IN ('software', 'financial_services', 'healthcare', 'manufacturing',
                                                'retail', 'education', 'media', 'logistics', 'energy',
                                                'public_sector', 'professional_services', 'other')),
    -- employee-count band
    size               text CHECK (size IN ('1-10', '11-50', '51-200', '201-1000', '1001-5000', '5000+')),
    segment            text CHECK (segment IN ('smb', 'mid_market', 'enterprise')),
    lifecycle_stage    text NOT NULL DEFAULT 'prospect'
                       CHECK (lifecycle_stage IN ('prospect', 'customer', 'former_customer', 'partner')),
    employee_count     integer CHECK (employee_count >= 0),
    annual_revenue     numeric(18, 2) CHECK (annual_revenue >= 0),
    currency           text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    phone              text,
    website            text,
    billing_country    text CHECK (billing_country ~ '^[A-Z]{2}$'),
    billing_city       text,
    description        text,
    last_activity_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES accounts (tenant_id, id) ON DELETE SET NULL (parent_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, territory_id) REFERENCES territories (tenant_id, id) ON DELETE SET NULL (territory_id),
    CHECK (parent_id IS DISTINCT FROM id)
);
CREATE INDEX accounts_tenant_owner_idx ON accounts (tenant_id, owner_id);
CREATE INDEX accounts_tenant_parent_idx ON accounts (tenant_id, parent_id);
CREATE INDEX accounts_tenant_territory_idx ON accounts (tenant_id, territory_id);
CREATE INDEX accounts_tenant_domain_idx ON accounts (tenant_id, domain);
CREATE INDEX accounts_tenant_lower_name_idx ON accounts (tenant_id, lower(name));
CREATE INDEX accounts_tenant_industry_idx ON accounts (tenant_id, industry);
SELECT orbas.secure_table('accounts');

CREATE TABLE contacts (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid PRIMARY KEY,
    account_id       uuid,
    owner_id         uuid,
    first_name       text NOT NULL,
    last_name        text NOT NULL,
    email            text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    phone            text,
    title            text,
    seniority        text CHECK (seniority IN ('individual', 'manager', 'director', 'vp', 'c_level')),
    lifecycle_stage  text NOT NULL DEFAULT 'lead'
                     CHECK (lifecycle_stage IN ('subscriber', 'lead', 'mql', 'sql', 'opportunity', 'customer', 'evangelist')),
    do_not_contact   boolean NOT NULL DEFAULT false,
    last_activity_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE SET NULL (account_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id)
);
CREATE INDEX contacts_tenant_account_idx ON contacts (tenant_id, account_id);
CREATE INDEX contacts_tenant_owner_idx ON contacts (tenant_id, owner_id);
CREATE INDEX contacts_tenant_lower_email_idx ON contacts (tenant_id, lower(email));
CREATE INDEX contacts_tenant_name_idx ON contacts (tenant_id, lower(last_name), lower(first_name));
SELECT orbas.secure_table('contacts');

CREATE TABLE campaigns (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('email', 'event', 'webinar', 'paid_ads', 'content', 'referral', 'other')),
    status      text NOT NULL DEFAULT 'planned' CHECK (status IN ('planned', 'active', 'completed', 'aborted')),
    owner_id    uuid,
    starts_on   date,
    ends_on     date,
    budget      numeric(18, 2) CHECK (budget >= 0),
    actual_cost numeric(18, 2) CHECK (actual_cost >= 0),
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    CHECK (ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on)
);
CREATE INDEX campaigns_tenant_status_idx ON campaigns (tenant_id, status);
SELECT orbas.secure_table('campaigns');

CREATE TABLE leads (
    tenant_id                uuid NOT NULL REFERENCES tenants (id),
    id                       uuid PRIMARY KEY,
    owner_id                 uuid,
    campaign_id              uuid,
    first_name               text NOT NULL,
    last_name                text NOT NULL,
    email                    text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    phone                    text,
    company                  text,
    title                    text,
    industry                 text,
    company_size             text CHECK (company_size IN ('1-10', '11-50', '51-200', '201-1000', '1001-5000', '5000+')),
    country                  text CHECK (country ~ '^[A-Z]{2}$'),
    source                   text NOT NULL CHECK (source IN ('web', 'referral', 'event', 'outbound', 'partner',
                                                             'paid_ads', 'content', 'other')),
    status                   text NOT NULL DEFAULT 'new'
                             CHECK (status IN ('new', 'working', 'nurturing', 'qualified', 'unqualified', 'converted')),
    converted_at             timestamptz,
    converted_account_id     uuid,
    converted_contact_id     uuid,
    converted_opportunity_id uuid, -- FK added with opportunities
    last_activity_at         timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE SET NULL (campaign_id),
    FOREIGN KEY (tenant_id, converted_account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, converted_contact_id) REFERENCES contacts (tenant_id, id),
    CHECK ((status = 'converted') = (converted_at IS NOT NULL))
);
CREATE INDEX leads_tenant_owner_idx ON leads (tenant_id, owner_id);
CREATE INDEX leads_tenant_status_idx ON leads (tenant_id, status);
CREATE INDEX leads_tenant_lower_email_idx ON leads (tenant_id, lower(email));
CREATE INDEX leads_tenant_created_idx ON leads (tenant_id, created_at);
SELECT orbas.secure_table('leads');

CREATE TABLE campaign_members (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid PRIMARY KEY,
    campaign_id  uuid NOT NULL,
    contact_id   uuid,
    lead_id      uuid,
    status       text NOT NULL DEFAULT 'sent'
                 CHECK (status IN ('sent', 'opened', 'clicked', 'responded', 'unsubscribed', 'bounced')),
    responded_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE,
    CHECK (num_nonnulls(contact_id, lead_id) = 1)
);
CREATE INDEX campaign_members_tenant_campaign_idx ON campaign_members (tenant_id, campaign_id);
CREATE INDEX campaign_members_tenant_contact_idx ON campaign_members (tenant_id, contact_id);
CREATE INDEX campaign_members_tenant_lead_idx ON campaign_members (tenant_id, lead_id);
SELECT orbas.secure_table('campaign_members');

CREATE TABLE contact_relationships (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    from_contact_id uuid NOT NULL,
    to_contact_id   uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('reports_to', 'colleague', 'influences', 'champion_of',
                                                  'blocker_of', 'decision_maker_for', 'referred')),
    strength        smallint NOT NULL DEFAULT 3 CHECK (strength BETWEEN 1 AND 5),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, from_contact_id, to_contact_id, kind),
    FOREIGN KEY (tenant_id, from_contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, to_contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    CHECK (from_contact_id <> to_contact_id)
);
CREATE INDEX contact_relationships_tenant_to_idx ON contact_relationships (tenant_id, to_contact_id);
SELECT orbas.secure_table('contact_relationships');

CREATE TABLE tags (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    color      text CHECK (color ~ '^#[0-9a-f]{6}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX tags_tenant_lower_name_key ON tags (tenant_id, lower(name));
SELECT orbas.secure_table('tags');

CREATE TABLE segments (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    entity      text NOT NULL CHECK (entity IN ('account', 'contact', 'lead')),
    -- filter tree, e.g. {"all": [{"field": "industry", "op": "eq", "value": "software"}]}
    definition  jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_dynamic  boolean NOT NULL DEFAULT true,
    owner_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id)
);
SELECT orbas.secure_table('segments');

CREATE TABLE interaction_logs (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('email', 'call', 'meeting', 'note', 'web_visit', 'chat')),
    direction        text CHECK (direction IN ('inbound', 'outbound')),
    user_id          uuid,
    account_id       uuid,
    contact_id       uuid,
    lead_id          uuid,
    opportunity_id   uuid, -- FK added with opportunities
    subject          text,
    body             text,
    duration_seconds integer CHECK (duration_seconds >= 0),
    occurred_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (user_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX interaction_logs_tenant_account_idx ON interaction_logs (tenant_id, account_id, occurred_at);
CREATE INDEX interaction_logs_tenant_contact_idx ON interaction_logs (tenant_id, contact_id, occurred_at);
CREATE INDEX interaction_logs_tenant_lead_idx ON interaction_logs (tenant_id, lead_id, occurred_at);
SELECT orbas.secure_table('interaction_logs');
