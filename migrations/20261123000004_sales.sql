-- Opportunity pipeline: stages with order and probability, opportunities, their stage history,
-- quotas and forecast snapshots per fiscal period, and the tag join tables.

CREATE TABLE pipeline_stages (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    pipeline        text NOT NULL DEFAULT 'default',
    name            text NOT NULL,
    position        smallint NOT NULL CHECK (position >= 0),
    probability     numeric(5, 2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
    is_won          boolean NOT NULL DEFAULT false,
    is_lost         boolean NOT NULL DEFAULT false,
    -- opportunity fields that must be set before an opportunity may enter this stage
    required_fields text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, pipeline, position),
    UNIQUE (tenant_id, pipeline, name),
    CHECK (NOT (is_won AND is_lost)),
    CHECK (NOT is_won OR probability = 100),
    CHECK (NOT is_lost OR probability = 0)
);
SELECT orbas.secure_table('pipeline_stages');

CREATE TABLE opportunities (
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    id                 uuid PRIMARY KEY,
    account_id         uuid NOT NULL,
    primary_contact_id uuid,
    owner_id           uuid,
    territory_id       uuid,
    campaign_id        uuid,
    stage_id           uuid NOT NULL,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    kind               text NOT NULL DEFAULT 'new_business' CHECK (kind IN ('new_business', 'expansion', 'renewal')),
    amount             numeric(18, 2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
    currency           text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    probability        numeric(5, 2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
    forecast_category  text NOT NULL DEFAULT 'pipeline'
                       CHECK (forecast_category IN ('omitted', 'pipeline', 'best_case', 'commit', 'closed')),
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    close_date         date NOT NULL,
    closed_at          timestamptz,
    lead_source        text,
    lost_reason        text,
    next_step          text,
    last_activity_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, primary_contact_id) REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (primary_contact_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, territory_id) REFERENCES territories (tenant_id, id) ON DELETE SET NULL (territory_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE SET NULL (campaign_id),
    FOREIGN KEY (tenant_id, stage_id) REFERENCES pipeline_stages (tenant_id, id),
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK (status <> 'lost' OR forecast_category = 'omitted'),
    CHECK (status <> 'won' OR forecast_category = 'closed')
);
CREATE INDEX opportunities_tenant_account_idx ON opportunities (tenant_id, account_id);
CREATE INDEX opportunities_tenant_owner_idx ON opportunities (tenant_id, owner_id, status);
CREATE INDEX opportunities_tenant_stage_idx ON opportunities (tenant_id, stage_id);
CREATE INDEX opportunities_tenant_close_idx ON opportunities (tenant_id, close_date);
CREATE INDEX opportunities_tenant_status_idx ON opportunities (tenant_id, status, close_date);
CREATE INDEX opportunities_tenant_territory_idx ON opportunities (tenant_id, territory_id);
SELECT orbas.secure_table('opportunities');

ALTER TABLE leads ADD FOREIGN KEY (tenant_id, converted_opportunity_id) REFERENCES opportunities (tenant_id, id);
ALTER TABLE interaction_logs
    ADD FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX interaction_logs_tenant_opportunity_idx ON interaction_logs (tenant_id, opportunity_id, occurred_at);

CREATE TABLE stage_histories (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    opportunity_id uuid NOT NULL,
    from_stage_id  uuid, -- NULL for the opportunity's first stage
    to_stage_id    uuid NOT NULL,
    changed_by     uuid,
    changed_at     timestamptz NOT NULL,
    amount         numeric(18, 2) NOT NULL CHECK (amount >= 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    probability    numeric(5, 2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, from_stage_id) REFERENCES pipeline_stages (tenant_id, id),
    FOREIGN KEY (tenant_id, to_stage_id) REFERENCES pipeline_stages (tenant_id, id),
    FOREIGN KEY (tenant_id, changed_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (changed_by)
);
CREATE INDEX stage_histories_tenant_opportunity_idx ON stage_histories (tenant_id, opportunity_id, changed_at);
SELECT orbas.secure_table('stage_histories');

-- Quota per rep (or per territory when user_id is NULL) and fiscal quarter, in the tenant's currency.
CREATE TABLE quotas (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    user_id        uuid,
    territory_id   uuid,
    fiscal_year    smallint NOT NULL CHECK (fiscal_year BETWEEN 1990 AND 2200),
    fiscal_quarter smallint NOT NULL CHECK (fiscal_quarter BETWEEN 1 AND 4),
    period_start   date NOT NULL,
    period_end     date NOT NULL,
    amount         numeric(18, 2) NOT NULL CHECK (amount >= 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, territory_id) REFERENCES territories (tenant_id, id) ON DELETE CASCADE,
    CHECK (num_nonnulls(user_id, territory_id) >= 1),
    CHECK (period_end > period_start)
);
CREATE UNIQUE INDEX quotas_owner_period_key
    ON quotas (tenant_id, coalesce(user_id, territory_id), fiscal_year, fiscal_quarter);
SELECT orbas.secure_table('quotas');

CREATE TABLE forecast_snapshots (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    user_id        uuid,
    territory_id   uuid,
    fiscal_year    smallint NOT NULL CHECK (fiscal_year BETWEEN 1990 AND 2200),
    fiscal_quarter smallint NOT NULL CHECK (fiscal_quarter BETWEEN 1 AND 4),
    snapshot_date  date NOT NULL,
    source         text NOT NULL CHECK (source IN ('rollup', 'model', 'manager_call')),
    commit_amount    numeric(18, 2) NOT NULL DEFAULT 0 CHECK (commit_amount >= 0),
    best_case_amount numeric(18, 2) NOT NULL DEFAULT 0 CHECK (best_case_amount >= 0),
    pipeline_amount  numeric(18, 2) NOT NULL DEFAULT 0 CHECK (pipeline_amount >= 0),
    closed_amount    numeric(18, 2) NOT NULL DEFAULT 0 CHECK (closed_amount >= 0),
    predicted_amount numeric(18, 2) CHECK (predicted_amount >= 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, territory_id) REFERENCES territories (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX forecast_snapshots_tenant_period_idx
    ON forecast_snapshots (tenant_id, fiscal_year, fiscal_quarter, snapshot_date);
SELECT orbas.secure_table('forecast_snapshots');

-- Tag join tables: one per taggable entity, each with composite keys into its tenant.
CREATE TABLE account_tags (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    tag_id     uuid NOT NULL,
    account_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, account_id, tag_id),
    FOREIGN KEY (tenant_id, tag_id) REFERENCES tags (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX account_tags_tenant_tag_idx ON account_tags (tenant_id, tag_id);
SELECT orbas.secure_table('account_tags');

CREATE TABLE contact_tags (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    tag_id     uuid NOT NULL,
    contact_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, contact_id, tag_id),
    FOREIGN KEY (tenant_id, tag_id) REFERENCES tags (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_tags_tenant_tag_idx ON contact_tags (tenant_id, tag_id);
SELECT orbas.secure_table('contact_tags');

CREATE TABLE lead_tags (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    tag_id     uuid NOT NULL,
    lead_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, lead_id, tag_id),
    FOREIGN KEY (tenant_id, tag_id) REFERENCES tags (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_tags_tenant_tag_idx ON lead_tags (tenant_id, tag_id);
SELECT orbas.secure_table('lead_tags');

CREATE TABLE opportunity_tags (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    tag_id         uuid NOT NULL,
    opportunity_id uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, opportunity_id, tag_id),
    FOREIGN KEY (tenant_id, tag_id) REFERENCES tags (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX opportunity_tags_tenant_tag_idx ON opportunity_tags (tenant_id, tag_id);
SELECT orbas.secure_table('opportunity_tags');
