-- Service (SLA policies, tickets and their messages, knowledge base), documents with versions, and the
-- activity suite: tasks (calls, emails, meetings, to-dos with due dates, status and SLA) and calendar events.

CREATE TABLE sla_policies (
    tenant_id              uuid NOT NULL REFERENCES tenants (id),
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL,
    priority               text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    first_response_minutes integer NOT NULL CHECK (first_response_minutes > 0),
    resolution_minutes     integer NOT NULL CHECK (resolution_minutes > 0),
    business_hours_only    boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name),
    CHECK (resolution_minutes >= first_response_minutes)
);
SELECT orbas.secure_table('sla_policies');

CREATE TABLE tickets (
    tenant_id             uuid NOT NULL REFERENCES tenants (id),
    id                    uuid PRIMARY KEY,
    number                text NOT NULL,
    account_id            uuid,
    contact_id            uuid,
    owner_id              uuid,
    sla_policy_id         uuid,
    subject               text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    description           text,
    status                text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'open', 'pending', 'solved', 'closed')),
    priority              text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    channel               text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'chat', 'phone', 'web', 'social')),
    category              text,
    first_response_due_at timestamptz,
    resolution_due_at     timestamptz,
    first_responded_at    timestamptz,
    solved_at             timestamptz,
    csat                  smallint CHECK (csat BETWEEN 1 AND 5),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE SET NULL (account_id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (contact_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, sla_policy_id) REFERENCES sla_policies (tenant_id, id) ON DELETE SET NULL (sla_policy_id),
    CHECK (status NOT IN ('solved', 'closed') OR solved_at IS NOT NULL)
);
CREATE INDEX tickets_tenant_account_idx ON tickets (tenant_id, account_id, created_at);
CREATE INDEX tickets_tenant_contact_idx ON tickets (tenant_id, contact_id);
CREATE INDEX tickets_tenant_owner_idx ON tickets (tenant_id, owner_id, status);
CREATE INDEX tickets_tenant_status_idx ON tickets (tenant_id, status, priority);
SELECT orbas.secure_table('tickets');

CREATE TABLE ticket_messages (
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    id                uuid PRIMARY KEY,
    ticket_id         uuid NOT NULL,
    author_user_id    uuid,
    author_contact_id uuid,
    body              text NOT NULL,
    is_internal       boolean NOT NULL DEFAULT false,
    sent_at           timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, author_user_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (author_user_id),
    FOREIGN KEY (tenant_id, author_contact_id) REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (author_contact_id)
);
CREATE INDEX ticket_messages_tenant_ticket_idx ON ticket_messages (tenant_id, ticket_id, sent_at);
SELECT orbas.secure_table('ticket_messages');

CREATE TABLE knowledge_articles (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid PRIMARY KEY,
    title         text NOT NULL,
    slug          text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    body          text NOT NULL,
    category      text,
    language      text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    author_id     uuid,
    published_at  timestamptz,
    view_count    integer NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    helpful_count integer NOT NULL DEFAULT 0 CHECK (helpful_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, language, slug),
    FOREIGN KEY (tenant_id, author_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (author_id),
    CHECK (status <> 'published' OR published_at IS NOT NULL)
);
CREATE INDEX knowledge_articles_tenant_status_idx ON knowledge_articles (tenant_id, status);
SELECT orbas.secure_table('knowledge_articles');

CREATE TABLE documents (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    title          text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('proposal', 'contract', 'presentation', 'spreadsheet', 'note', 'other')),
    status         text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'in_review', 'approved', 'signed', 'archived')),
    owner_id       uuid,
    account_id     uuid,
    opportunity_id uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE SET NULL (account_id),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE SET NULL (opportunity_id)
);
CREATE INDEX documents_tenant_account_idx ON documents (tenant_id, account_id);
CREATE INDEX documents_tenant_opportunity_idx ON documents (tenant_id, opportunity_id);
SELECT orbas.secure_table('documents');

CREATE TABLE document_versions (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid PRIMARY KEY,
    document_id  uuid NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_url  text,
    body         text, -- extracted text, for search
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, document_id, version),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by)
);
SELECT orbas.secure_table('document_versions');

CREATE TABLE tasks (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('call', 'email', 'meeting', 'task')),
    subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    description    text,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'completed', 'cancelled')),
    priority       text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    owner_id       uuid,
    account_id     uuid,
    contact_id     uuid,
    lead_id        uuid,
    opportunity_id uuid,
    ticket_id      uuid,
    due_at         timestamptz,
    -- the time by which the task must be done to meet its service level (NULL: no SLA)
    sla_due_at     timestamptz,
    completed_at   timestamptz,
    outcome        text CHECK (outcome IN ('connected', 'left_voicemail', 'no_answer', 'replied', 'held', 'no_show', 'done')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id) ON DELETE CASCADE,
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX tasks_tenant_owner_idx ON tasks (tenant_id, owner_id, status, due_at);
CREATE INDEX tasks_tenant_account_idx ON tasks (tenant_id, account_id);
CREATE INDEX tasks_tenant_contact_idx ON tasks (tenant_id, contact_id);
CREATE INDEX tasks_tenant_lead_idx ON tasks (tenant_id, lead_id);
CREATE INDEX tasks_tenant_opportunity_idx ON tasks (tenant_id, opportunity_id);
CREATE INDEX tasks_tenant_ticket_idx ON tasks (tenant_id, ticket_id);
SELECT orbas.secure_table('tasks');

CREATE TABLE calendar_events (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    owner_id       uuid NOT NULL,
    task_id        uuid,
    account_id     uuid,
    contact_id     uuid,
    opportunity_id uuid,
    title          text NOT NULL,
    location       text,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    timezone       text NOT NULL DEFAULT 'UTC',
    all_day        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id) ON DELETE SET NULL (task_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE,
    CHECK (ends_at >= starts_at)
);
CREATE INDEX calendar_events_tenant_owner_idx ON calendar_events (tenant_id, owner_id, starts_at);
CREATE INDEX calendar_events_tenant_account_idx ON calendar_events (tenant_id, account_id);
SELECT orbas.secure_table('calendar_events');
