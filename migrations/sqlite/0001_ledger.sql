-- hongxin ledger schema (SQLite). Money is integer fen everywhere; areas are integer dm² (0.01 m²).
-- Dates are 'YYYY-MM-DD' text, timestamps RFC 3339 UTC text.

CREATE TABLE cooperatives (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE shops (
    id              INTEGER PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    created_at      TEXT NOT NULL
) STRICT;

CREATE TABLE companies (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE compounds (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    company_id  INTEGER NOT NULL REFERENCES companies(id),
    eligible    INTEGER NOT NULL CHECK (eligible IN (0, 1)),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE households (
    id            INTEGER PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE,
    compound_id   INTEGER NOT NULL REFERENCES compounds(id),
    area_dm2      INTEGER NOT NULL CHECK (area_dm2 >= 0),
    name          TEXT,
    pin_hash      TEXT,
    link_version  INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX households_by_compound ON households(compound_id);

CREATE TABLE catalog_items (
    id              INTEGER PRIMARY KEY,
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    sku             TEXT NOT NULL,
    name            TEXT NOT NULL,
    unit            TEXT NOT NULL,
    price           INTEGER NOT NULL CHECK (price >= 0),
    cost            INTEGER NOT NULL CHECK (cost >= 0),
    updated_at      TEXT NOT NULL,
    UNIQUE (cooperative_id, sku)
) STRICT;

CREATE TABLE tokens (
    id              INTEGER PRIMARY KEY,
    hash            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'cashier', 'coop_accountant', 'company', 'resident')),
    cooperative_id  INTEGER REFERENCES cooperatives(id),
    shop_id         INTEGER REFERENCES shops(id),
    company_id      INTEGER REFERENCES companies(id),
    household_id    INTEGER REFERENCES households(id),
    label           TEXT,
    created_at      TEXT NOT NULL,
    -- Residents' sessions expire; operators' tokens live until revoked.
    expires_at      TEXT,
    revoked_at      TEXT
) STRICT;

-- Balances are kept on the account's normal side; bounded accounts (wallets, vouchers) never
-- go below zero.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    owner_kind  TEXT NOT NULL CHECK (owner_kind IN ('cooperative', 'company', 'household', 'voucher')),
    owner_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    bounded     INTEGER NOT NULL CHECK (bounded IN (0, 1)),
    balance     INTEGER NOT NULL DEFAULT 0,
    CHECK (bounded = 0 OR balance >= 0),
    UNIQUE (owner_kind, owner_id, name)
) STRICT;

-- The journal. id is the chain sequence; hash = SHA-256(prev_hash, canonical bytes).
CREATE TABLE entries (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    business_date    TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    actor_token_id   INTEGER,
    policy           TEXT,
    policy_hash      TEXT,
    idempotency_key  TEXT,
    memo             TEXT,
    reverses         INTEGER REFERENCES entries(id),
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
) STRICT;
CREATE INDEX entries_by_date ON entries(business_date);
CREATE INDEX entries_by_reverses ON entries(reverses) WHERE reverses IS NOT NULL;

-- amount: fen, positive = debit, negative = credit.
CREATE TABLE postings (
    entry_id    INTEGER NOT NULL REFERENCES entries(id),
    idx         INTEGER NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    amount      INTEGER NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (entry_id, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX postings_by_account ON postings(account_id, entry_id);

-- Entries are immutable: corrections are new entries that reference the original.
CREATE TRIGGER entries_are_immutable BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'journal entries are immutable'); END;
CREATE TRIGGER entries_are_permanent BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'journal entries are immutable'); END;
CREATE TRIGGER postings_are_immutable BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;
CREATE TRIGGER postings_are_permanent BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are immutable'); END;

CREATE TABLE policy_applications (
    policy_id         TEXT NOT NULL,
    version           INTEGER NOT NULL,
    hash              TEXT NOT NULL,
    first_applied_at  TEXT NOT NULL,
    PRIMARY KEY (policy_id, version)
) STRICT;

CREATE TABLE vouchers (
    id              INTEGER PRIMARY KEY,
    serial          INTEGER NOT NULL UNIQUE,
    key_id          INTEGER NOT NULL,
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    household_id    INTEGER REFERENCES households(id),
    issued_on       TEXT NOT NULL,
    expires_on      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'void', 'expired'))
) STRICT;
CREATE INDEX vouchers_by_household ON vouchers(household_id);
CREATE INDEX vouchers_active_by_expiry ON vouchers(expires_on) WHERE status = 'active';

CREATE TABLE topups (
    entry_id        INTEGER PRIMARY KEY REFERENCES entries(id),
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    shop_id         INTEGER NOT NULL REFERENCES shops(id),
    household_id    INTEGER NOT NULL REFERENCES households(id),
    method          TEXT NOT NULL,
    paid            INTEGER NOT NULL CHECK (paid > 0),
    bonus           INTEGER NOT NULL CHECK (bonus >= 0),
    voucher_id      INTEGER REFERENCES vouchers(id),
    business_date   TEXT NOT NULL,
    month           TEXT NOT NULL
) STRICT;
CREATE INDEX topups_by_household_month ON topups(household_id, month);
CREATE INDEX topups_by_shop_date ON topups(shop_id, business_date);

CREATE TABLE sales (
    id              INTEGER PRIMARY KEY,
    entry_id        INTEGER NOT NULL UNIQUE REFERENCES entries(id),
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    shop_id         INTEGER NOT NULL REFERENCES shops(id),
    household_id    INTEGER REFERENCES households(id),
    total           INTEGER NOT NULL CHECK (total > 0),
    cost            INTEGER NOT NULL CHECK (cost >= 0),
    refunded        INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= total),
    refunded_cost   INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cost >= 0 AND refunded_cost <= cost),
    business_date   TEXT NOT NULL
) STRICT;
CREATE INDEX sales_by_shop_date ON sales(shop_id, business_date);
CREATE INDEX sales_by_household ON sales(household_id, business_date);

CREATE TABLE sale_lines (
    sale_id  INTEGER NOT NULL REFERENCES sales(id),
    idx      INTEGER NOT NULL,
    sku      TEXT NOT NULL,
    qty      TEXT NOT NULL,
    price    INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    cost     INTEGER NOT NULL,
    PRIMARY KEY (sale_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE sale_tenders (
    sale_id         INTEGER NOT NULL REFERENCES sales(id),
    idx             INTEGER NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('wallet', 'voucher', 'cash', 'wechat', 'alipay')),
    household_id    INTEGER REFERENCES households(id),
    voucher_id      INTEGER REFERENCES vouchers(id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    paid_part       INTEGER NOT NULL DEFAULT 0,
    bonus_part      INTEGER NOT NULL DEFAULT 0,
    refunded        INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    refunded_paid   INTEGER NOT NULL DEFAULT 0,
    refunded_bonus  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE sale_refunds (
    entry_id       INTEGER PRIMARY KEY REFERENCES entries(id),
    sale_id        INTEGER NOT NULL REFERENCES sales(id),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    cost           INTEGER NOT NULL
) STRICT;

-- Idempotency keys, scoped to the token, stored in the same transaction as the work; the
-- outcome (receipt or rejection) is replayed for a retry with the same request.
CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency(created_at);
