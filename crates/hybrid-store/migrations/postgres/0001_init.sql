-- HybridPlatform store, PostgreSQL dialect. Money is integer nano-dollars.
-- JSON columns are JSON, not JSONB: JSONB reorders object keys, and a
-- TaskResult's `stages` object must keep stage order.

CREATE TABLE tasks (
    id                 TEXT        PRIMARY KEY,
    description        TEXT        NOT NULL,
    task_type          TEXT        NOT NULL,
    priority           SMALLINT    NOT NULL,
    status             TEXT        NOT NULL,
    submitted_by       TEXT,
    task               JSON        NOT NULL,
    platform           TEXT,
    route              JSON,
    result             JSON,
    output             TEXT,
    input_tokens       BIGINT,
    output_tokens      BIGINT,
    cache_read_tokens  BIGINT,
    cache_write_tokens BIGINT,
    cost_nanos         BIGINT,              -- NULL when the cost is unknown
    duration_ms        BIGINT,
    error              TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ
);

CREATE INDEX tasks_status_idx ON tasks (status);
CREATE INDEX tasks_created_at_idx ON tasks (created_at);

CREATE TABLE status_changes (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     TEXT        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_status TEXT,                        -- NULL for the creation entry
    to_status   TEXT        NOT NULL,
    reason      TEXT,
    at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX status_changes_task_idx ON status_changes (task_id, id);

CREATE TABLE events (
    task_id    TEXT        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq        BIGINT      NOT NULL,
    event_type TEXT        NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    body       JSON        NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE stages (
    task_id    TEXT        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position   BIGINT      NOT NULL,
    name       TEXT        NOT NULL,
    agent      TEXT        NOT NULL,
    platform   TEXT        NOT NULL,
    body       JSON        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, position)
);
