-- HybridPlatform store, SQLite dialect. Timestamps are RFC 3339 TEXT in UTC with
-- microseconds and a `Z` (fixed width, so they sort as text); money is integer
-- nano-dollars; JSON is TEXT written by serde_json.

CREATE TABLE tasks (
    id                 TEXT    PRIMARY KEY NOT NULL,
    description        TEXT    NOT NULL,
    task_type          TEXT    NOT NULL,
    priority           INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    submitted_by       TEXT,
    task               TEXT    NOT NULL,  -- Task JSON
    platform           TEXT,              -- set by set_route / finish
    route              TEXT,              -- RouteInfo JSON
    result             TEXT,              -- TaskResult JSON, set by finish
    output             TEXT,
    input_tokens       INTEGER,
    output_tokens      INTEGER,
    cache_read_tokens  INTEGER,
    cache_write_tokens INTEGER,
    cost_nanos         INTEGER,           -- NULL when the cost is unknown
    duration_ms        INTEGER,
    error              TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    finished_at        TEXT
);

CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_created_at_idx ON tasks (created_at);

CREATE TABLE status_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_status TEXT,                     -- NULL for the creation entry
    to_status   TEXT    NOT NULL,
    reason      TEXT,
    at          TEXT    NOT NULL
);

CREATE INDEX status_changes_task_idx ON status_changes (task_id, id);

CREATE TABLE events (
    task_id    TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    at         TEXT    NOT NULL,
    body       TEXT    NOT NULL,          -- Event JSON
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE stages (
    task_id    TEXT    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    agent      TEXT    NOT NULL,
    platform   TEXT    NOT NULL,
    body       TEXT    NOT NULL,          -- StageResult JSON
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (task_id, position)
) WITHOUT ROWID;
