-- Calls grow by millions a day and must be removable by age without a table-wide DELETE:
-- calls is now partitioned by month of created_at (when the call was first stored, never
-- changed afterwards), so a month past retention is dropped whole. A unique index on a
-- partitioned table must contain the partition key, so (integration_id, uid) can no longer be
-- unique in calls itself: call_keys carries that uniqueness and says where each call lives
-- (its id and created_at, calls' primary key). The worker's upsert claims the key in
-- call_keys and writes the row in one statement. See docs/scale.md.

CREATE TABLE call_keys (
    integration_id  uuid NOT NULL,
    uid             text NOT NULL,
    call_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (integration_id, uid)
);
-- Retention removes keys by age in batches; keys arrive in time order, so a BRIN index is
-- enough and costs the upsert next to nothing.
CREATE INDEX call_keys_created ON call_keys USING brin (created_at);

ALTER TABLE calls RENAME TO calls_unpartitioned;
ALTER TABLE calls_unpartitioned RENAME CONSTRAINT calls_pkey TO calls_unpartitioned_pkey;
ALTER INDEX calls_department_started RENAME TO calls_unpartitioned_department_started;

CREATE TABLE calls (
    LIKE calls_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX calls_department_started ON calls (department_id, started_at);
-- What retention deletes row by row in the month it cuts through (and in calls_default).
CREATE INDEX calls_created ON calls USING brin (created_at);

-- Rows no monthly partition takes: a month nobody created ahead (the retention job creates
-- them) is stored rather than refused. calls_partition_ensure moves them out later.
CREATE TABLE calls_default PARTITION OF calls DEFAULT;

-- Creates the partition for the month holding `at` (UTC months), named calls_pYYYY_MM, unless
-- it exists; rows the default partition took for that month move into it. Returns its name.
CREATE FUNCTION calls_partition_ensure(at timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    month timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
    lo timestamptz := month AT TIME ZONE 'UTC';
    hi timestamptz := (month + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'calls_p' || to_char(month, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE calls INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM calls_default WHERE created_at >= %L AND created_at < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE calls ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN name;
END
$$;

-- Every month the stored calls cover, and the next two (UTC months whatever the session's zone).
SELECT calls_partition_ensure(m AT TIME ZONE 'UTC')
FROM generate_series(
    date_trunc('month', COALESCE((SELECT min(created_at) FROM calls_unpartitioned), now()) AT TIME ZONE 'UTC'),
    (now() AT TIME ZONE 'UTC') + interval '2 months',
    interval '1 month') AS m;

INSERT INTO calls SELECT * FROM calls_unpartitioned;
INSERT INTO call_keys (integration_id, uid, call_id, created_at)
SELECT integration_id, uid, id, created_at FROM calls_unpartitioned;
DROP TABLE calls_unpartitioned;

-- Dead letters are removed by age (retention) in batches.
CREATE INDEX dead_letters_last_failed ON dead_letters (last_failed_at);

-- Clients stay undeletable (calls point at them), except by an erasure on request, which
-- says so for its own transaction: SET LOCAL callq.erasure = 'on'.
CREATE OR REPLACE FUNCTION refuse_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'clients' AND TG_OP = 'DELETE'
       AND current_setting('callq.erasure', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% rows are never deleted, nor their ids changed: stored calls point at them',
        TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'Deactivate a user or a binding instead (users.active, user_account_bindings.active).';
END
$$;
