-- Budgets (see src/budget.rs). One row per budget scope (`task:<id>`,
-- `platform:openai`, `submitter:alice`, `day:2026-11-24`) with what has been
-- spent against it, in nano-dollars; the limit is the caller's, given with
-- every charge. Every reservation and settlement is a `budget_ledger` row
-- (no foreign key: the ledger outlives deleted tasks, like the audit log).
-- Timestamps as in 0001.

CREATE TABLE budgets (
    scope       TEXT    PRIMARY KEY NOT NULL,
    spent_nanos INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE budget_ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('reserve', 'settle')),
    delta_nanos INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    at          TEXT    NOT NULL
);

CREATE INDEX budget_ledger_task_idx ON budget_ledger (task_id, id);
CREATE INDEX budget_ledger_scope_idx ON budget_ledger (scope, id);
