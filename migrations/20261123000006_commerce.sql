-- Quote to cash: products, price books and their entries, quotes with items, subscriptions, invoices
-- with items, payments. Totals are stored as computed by the application (the API computes quote totals
-- server-side); amounts keep their own currency, converted with `currency_rates` when rolled up.

CREATE TABLE products (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    sku             text NOT NULL CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{1,40}$'),
    name            text NOT NULL,
    family          text CHECK (family IN ('platform', 'add_on', 'services', 'support', 'hardware')),
    description     text,
    is_recurring    boolean NOT NULL DEFAULT true,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, sku)
);
SELECT orbas.secure_table('products');

CREATE TABLE price_books (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    is_default boolean NOT NULL DEFAULT false,
    is_active  boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX price_books_one_default_per_currency
    ON price_books (tenant_id, currency) WHERE is_default;
SELECT orbas.secure_table('price_books');

CREATE TABLE price_book_entries (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid PRIMARY KEY,
    price_book_id uuid NOT NULL,
    product_id    uuid NOT NULL,
    unit_price    numeric(18, 2) NOT NULL CHECK (unit_price >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, price_book_id, product_id),
    FOREIGN KEY (tenant_id, price_book_id) REFERENCES price_books (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE CASCADE
);
SELECT orbas.secure_table('price_book_entries');

CREATE TABLE quotes (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid PRIMARY KEY,
    number         text NOT NULL,
    opportunity_id uuid NOT NULL,
    account_id     uuid NOT NULL,
    price_book_id  uuid,
    owner_id       uuid,
    approved_by    uuid,
    status         text NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'in_review', 'approved', 'sent', 'accepted', 'rejected', 'expired')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    valid_until    date,
    subtotal       numeric(18, 2) NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
    discount_total numeric(18, 2) NOT NULL DEFAULT 0 CHECK (discount_total >= 0),
    tax_total      numeric(18, 2) NOT NULL DEFAULT 0 CHECK (tax_total >= 0),
    total          numeric(18, 2) NOT NULL DEFAULT 0 CHECK (total >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, price_book_id) REFERENCES price_books (tenant_id, id) ON DELETE SET NULL (price_book_id),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id) ON DELETE SET NULL (owner_id),
    FOREIGN KEY (tenant_id, approved_by) REFERENCES users (tenant_id, id) ON DELETE SET NULL (approved_by),
    CHECK (total = subtotal - discount_total + tax_total)
);
CREATE INDEX quotes_tenant_opportunity_idx ON quotes (tenant_id, opportunity_id);
CREATE INDEX quotes_tenant_account_idx ON quotes (tenant_id, account_id);
SELECT orbas.secure_table('quotes');

CREATE TABLE quote_items (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid PRIMARY KEY,
    quote_id     uuid NOT NULL,
    product_id   uuid NOT NULL,
    position     smallint NOT NULL CHECK (position >= 0),
    description  text,
    quantity     numeric(12, 2) NOT NULL CHECK (quantity > 0),
    unit_price   numeric(18, 2) NOT NULL CHECK (unit_price >= 0),
    discount_pct numeric(5, 2) NOT NULL DEFAULT 0 CHECK (discount_pct BETWEEN 0 AND 100),
    line_total   numeric(18, 2) NOT NULL CHECK (line_total >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, quote_id, position),
    FOREIGN KEY (tenant_id, quote_id) REFERENCES quotes (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
SELECT orbas.secure_table('quote_items');

CREATE TABLE subscriptions (
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    id                 uuid PRIMARY KEY,
    account_id         uuid NOT NULL,
    product_id         uuid,
    opportunity_id     uuid,
    plan_name          text NOT NULL,
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('trialing', 'active', 'past_due', 'cancelled', 'expired')),
    billing_period     text NOT NULL DEFAULT 'monthly' CHECK (billing_period IN ('monthly', 'quarterly', 'annual')),
    seats              integer NOT NULL DEFAULT 1 CHECK (seats > 0),
    -- product usage, as reported by the product: active seats in the last 30 days
    active_seats_30d   integer CHECK (active_seats_30d >= 0),
    mrr                numeric(18, 2) NOT NULL CHECK (mrr >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    started_at         timestamptz NOT NULL,
    current_period_end timestamptz NOT NULL,
    cancelled_at       timestamptz,
    cancel_reason      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE SET NULL (product_id),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id) ON DELETE SET NULL (opportunity_id),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE INDEX subscriptions_tenant_account_idx ON subscriptions (tenant_id, account_id);
CREATE INDEX subscriptions_tenant_status_idx ON subscriptions (tenant_id, status);
SELECT orbas.secure_table('subscriptions');

CREATE TABLE invoices (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid PRIMARY KEY,
    number          text NOT NULL,
    account_id      uuid NOT NULL,
    subscription_id uuid,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    issued_on       date NOT NULL,
    due_on          date NOT NULL,
    subtotal        numeric(18, 2) NOT NULL CHECK (subtotal >= 0),
    tax_total       numeric(18, 2) NOT NULL DEFAULT 0 CHECK (tax_total >= 0),
    total           numeric(18, 2) NOT NULL CHECK (total >= 0),
    amount_paid     numeric(18, 2) NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id) ON DELETE SET NULL (subscription_id),
    CHECK (total = subtotal + tax_total),
    CHECK (due_on >= issued_on)
);
CREATE INDEX invoices_tenant_account_idx ON invoices (tenant_id, account_id, issued_on);
CREATE INDEX invoices_tenant_status_idx ON invoices (tenant_id, status, due_on);
SELECT orbas.secure_table('invoices');

CREATE TABLE invoice_items (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid PRIMARY KEY,
    invoice_id  uuid NOT NULL,
    product_id  uuid,
    description text NOT NULL,
    quantity    numeric(12, 2) NOT NULL CHECK (quantity > 0),
    unit_price  numeric(18, 2) NOT NULL CHECK (unit_price >= 0),
    amount      numeric(18, 2) NOT NULL CHECK (amount >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id) ON DELETE SET NULL (product_id)
);
CREATE INDEX invoice_items_tenant_invoice_idx ON invoice_items (tenant_id, invoice_id);
SELECT orbas.secure_table('invoice_items');

CREATE TABLE payments (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid PRIMARY KEY,
    invoice_id uuid NOT NULL,
    account_id uuid NOT NULL,
    amount     numeric(18, 2) NOT NULL CHECK (amount > 0),
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method     text NOT NULL CHECK (method IN ('card', 'bank_transfer', 'direct_debit', 'check', 'other')),
    status     text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    paid_at    timestamptz NOT NULL,
    reference  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX payments_tenant_invoice_idx ON payments (tenant_id, invoice_id);
CREATE INDEX payments_tenant_account_idx ON payments (tenant_id, account_id, paid_at);
SELECT orbas.secure_table('payments');
