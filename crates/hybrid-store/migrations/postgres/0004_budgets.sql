-- Budgets (see src/budget.rs). One row per budget scope (`task:<id>`,
-- `platform:openai`, `submitter:alice`, `day:2026-11-24`) with what has been
-- spent against it, in nano-dollars; the limit is the caller's, given with
-- every charge. Reservations lock the scope rows (`SELECT … FOR UPDATE`, in
-- key order). Every reservation and settlement is a `budget_ledger` row (no
-- foreign key: the ledger outlives deleted tasks, like the audit log).

CREATE TABLE budgets (
    scope       TEXT        PRIMARY KEY,
    spent_nanos BIGINT      NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE budget_ledger (
    id          BIGSERIAL   PRIMARY KEY,
    task_id     TEXT        NOT NULL,
    scope       TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('reserve', 'settle')),
    delta_nanos BIGINT      NOT NULL,
    note        TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX budget_ledger_task_idx ON budget_ledger (task_id, id);
CREATE INDEX budget_ledger_scope_idx ON budget_ledger (scope, id);
