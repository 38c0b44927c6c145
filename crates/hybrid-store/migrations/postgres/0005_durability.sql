-- Durability for resumable tasks (see src/journal.rs).
--
-- `journal`: one row per side effect of a task (a tool call, a runbook
-- command) under a key the engine chooses. A row is inserted in state
-- `started` before the effect runs (`INSERT … ON CONFLICT DO NOTHING`, so of
-- two writers of one key exactly one inserts it) and moved to `finished`
-- with its output after. `seq` is the begin order (an identity shared by all
-- tasks; gaps where an insert hit an existing key). `output` is JSON (not
-- JSONB, like every JSON column here), NULL until finished.
--
-- Leases on `tasks`: the process running a task holds `lease_owner` until
-- `lease_until`; another may take the task over once it has passed. Lease
-- times come from the database's clock (`now()`), so workers on several
-- machines agree on when a lease has expired whatever their own clocks say.

ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until TIMESTAMPTZ;

CREATE TABLE journal (
    task_id     TEXT        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    key         TEXT        NOT NULL,
    seq         BIGINT      GENERATED ALWAYS AS IDENTITY,
    state       TEXT        NOT NULL CHECK (state IN ('started', 'finished')),
    output      JSON,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (task_id, key)
);

CREATE INDEX journal_task_seq_idx ON journal (task_id, seq);
