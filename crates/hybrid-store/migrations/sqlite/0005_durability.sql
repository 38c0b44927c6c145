-- Durability for resumable tasks (see src/journal.rs).
--
-- `journal`: one row per side effect of a task (a tool call, a runbook
-- command) under a key the engine chooses. A row is inserted in state
-- `started` before the effect runs (`INSERT … ON CONFLICT DO NOTHING`, so of
-- two writers of one key exactly one inserts it) and moved to `finished`
-- with its output after. `seq` is the begin order within the task (the
-- task's highest `seq` + 1, computed inside the `BEGIN IMMEDIATE`
-- transaction that inserts the row). `output` is JSON text, NULL until
-- finished. Timestamps as in 0001.
--
-- Leases on `tasks`: the process running a task holds `lease_owner` until
-- `lease_until`; another may take the task over once it has passed.
-- SQLite compares against the application's clock (every process sharing a
-- database file runs on one machine, so there is one clock).

ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until TEXT;

CREATE TABLE journal (
    task_id     TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('started', 'finished')),
    output      TEXT,
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (task_id, key)
) WITHOUT ROWID;

CREATE INDEX journal_task_seq_idx ON journal (task_id, seq);
