-- Property fees (物业费), month close of the cooperative's profit, settlements to companies.

-- One bill per household and month; `settled` is how much of it payments and allocations have
-- covered so far, applied oldest bill first.
CREATE TABLE fee_bills (
    id            INTEGER PRIMARY KEY,
    household_id  INTEGER NOT NULL REFERENCES households(id),
    company_id    INTEGER NOT NULL REFERENCES companies(id),
    month         TEXT NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount > 0),
    settled       INTEGER NOT NULL DEFAULT 0 CHECK (settled >= 0 AND settled <= amount),
    entry_id      INTEGER NOT NULL REFERENCES entries(id),
    UNIQUE (household_id, month)
) STRICT;
CREATE INDEX fee_bills_open ON fee_bills(household_id, month) WHERE settled < amount;
CREATE INDEX fee_bills_by_company ON fee_bills(company_id, month);

-- What reduced a household's fees: its own payments and the cooperative's allocations.
CREATE TABLE fee_credits (
    entry_id      INTEGER NOT NULL REFERENCES entries(id),
    household_id  INTEGER NOT NULL REFERENCES households(id),
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'allocation')),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    method        TEXT,
    reference     TEXT,
    PRIMARY KEY (entry_id, household_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX fee_credits_by_household ON fee_credits(household_id);

-- A month closed for a cooperative: its inputs (weights, caps, seed, policy) so the run can be
-- recomputed and audited, and its result as returned to the accountant.
CREATE TABLE month_closes (
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    month           TEXT NOT NULL,
    entry_id        INTEGER REFERENCES entries(id),
    closed_on       TEXT NOT NULL,
    inputs          TEXT NOT NULL,
    result          TEXT NOT NULL,
    PRIMARY KEY (cooperative_id, month)
) STRICT;

CREATE TABLE settlements (
    entry_id        INTEGER PRIMARY KEY REFERENCES entries(id),
    cooperative_id  INTEGER NOT NULL REFERENCES cooperatives(id),
    company_id      INTEGER NOT NULL REFERENCES companies(id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    reference       TEXT NOT NULL,
    business_date   TEXT NOT NULL
) STRICT;

-- Each household's share of a closed month: its weight (credit spent, 1, or fees due), its cap
-- (fees owed at the close, when the policy caps), and what it got.
CREATE TABLE month_close_shares (
    cooperative_id  INTEGER NOT NULL,
    month           TEXT NOT NULL,
    household_id    INTEGER NOT NULL REFERENCES households(id),
    company_id      INTEGER NOT NULL REFERENCES companies(id),
    weight          INTEGER NOT NULL CHECK (weight >= 0),
    cap             INTEGER,
    amount          INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (cooperative_id, month, household_id),
    FOREIGN KEY (cooperative_id, month) REFERENCES month_closes(cooperative_id, month)
) STRICT, WITHOUT ROWID;
